// Console: forms and links marked data-confirm ask before they go (irreversible actions, revoking a token,
// an export with whole phone numbers).
document.querySelectorAll('form[data-confirm]').forEach(function (form) {
  form.addEventListener('submit', function (event) {
    if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  });
});
document.querySelectorAll('a[data-confirm]').forEach(function (link) {
  link.addEventListener('click', function (event) {
    if (!window.confirm(link.dataset.confirm)) { event.preventDefault(); }
  });
});
// Flask-Admin draws some links as href="javascript:void(0)" (tabs, disabled pages, menu toggles); the CSP
// forbids running javascript: addresses, so a click on one only does what its own handlers do.
document.addEventListener('click', function (event) {
  var link = event.target.closest && event.target.closest('a[href^="javascript:"]');
  if (link) { event.preventDefault(); }
}, true);  // capturing: a handler that stops the click's propagation must not let the address run
