// 附件: say at once when the chosen files are too many or too large, before a long upload is refused by the server
// (which checks everything again). The limits come from the input's data-max-files and data-max-bytes.
(function () {
  "use strict";
  document.querySelectorAll("input.file-input").forEach(function (input) {
    var note = input.closest(".field").parentNode.querySelector(".file-check");
    if (!note) { return; }
    input.addEventListener("change", function () {
      var problems = [];
      var max = parseInt(input.dataset.maxFiles, 10);
      var bytes = parseInt(input.dataset.maxBytes, 10);
      if (input.files.length > max) { problems.push(input.dataset.tooMany); }
      Array.prototype.forEach.call(input.files, function (file) {
        if (file.size > bytes) { problems.push(input.dataset.tooLarge.replace("{name}", file.name)); }
      });
      note.textContent = problems.join(" ");
      note.hidden = problems.length === 0;
    });
  });
})();
