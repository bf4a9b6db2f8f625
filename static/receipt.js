// The confirmation page's 打印 button (no inline scripts: the Content-Security-Policy forbids them).
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("print-receipt");
  if (button) button.addEventListener("click", function () { window.print(); });
});
