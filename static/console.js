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
