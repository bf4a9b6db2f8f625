// Case page: the 知识库 suggestions of a reply, an explanation or an answer (templates/admin/case.html).
// 「插入」 puts an entry's text into its form's text box, after what is typed there already, for the clerk to edit,
// and names the entry in the form's hidden knowledge_entry_id, so the event keeps which entry and version the answer
// started from. Without scripts the buttons stay hidden and each entry's text can be opened and copied.
document.querySelectorAll('.knowledge-panel').forEach(function (panel) {
  var form = panel.closest('form');
  var box = form && form.querySelector('textarea');
  var chosen = document.getElementById(panel.dataset.entryInput);
  if (!box || !chosen) { return; }
  panel.querySelectorAll('.knowledge-insert').forEach(function (button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var entry = button.closest('.knowledge-entry');
      var text = entry.querySelector('.knowledge-text').textContent.trim();
      var typed = box.value.replace(/\s+$/, '');
      box.value = typed ? typed + '\n\n' + text : text;
      chosen.value = entry.dataset.entryId;
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
      box.dispatchEvent(new Event('input', { bubbles: true }));
    });
  });
});
