// Console: forms and links marked data-confirm ask before they go (irreversible actions, revoking a token,
// an export with whole phone numbers); keyboard shortcuts for a clerk who works a hundred cases a day.
(function () {
  'use strict';

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
  // 打印 on the case page: the browser's print dialog (static/print.css lays the page out for paper).
  document.querySelectorAll('[data-print]').forEach(function (button) {
    button.addEventListener('click', function () { window.print(); });
  });

  // Flask-Admin's markup, made accessible: a column's question mark keeps its description as its name (Bootstrap's
  // tooltip empties the title; this runs before it does), and select2 3.5's boxes (a form's choices, a list's
  // filters, drawn on the page's load or when a filter is added) name their parts as ARIA allows: the input that keeps
  // the focus opens a list of choices (a combobox, not a button, which an input may not be), and the link that only
  // shows the choice (never focused) is hidden from screen readers, which hear the input.
  document.querySelectorAll('a[data-role="tooltip"][title]').forEach(function (mark) {
    mark.setAttribute('aria-label', mark.getAttribute('title'));
  });
  function fixSelect2(root) {
    root.querySelectorAll('input.select2-focusser[role="button"]').forEach(function (input) {
      input.setAttribute('role', 'combobox');
      input.setAttribute('aria-expanded', 'false');
    });
    root.querySelectorAll('a.select2-choice[tabindex="-1"]:not([aria-hidden])').forEach(function (link) {
      link.setAttribute('aria-hidden', 'true');
    });
  }
  new MutationObserver(function (records) {  // select2 draws its boxes when jQuery is ready, maybe after the load
    records.forEach(function (record) {
      if (record.addedNodes.length && record.target.querySelectorAll) { fixSelect2(record.target); }
    });
  }).observe(document.body, {childList: true, subtree: true});

  // A table or chart wider than a phone scrolls inside its box: a box with nothing to focus in it takes the focus
  // itself, so that the arrow keys scroll it; it is named after its card's heading.
  function scrollableBoxes() {
    document.querySelectorAll('.table-responsive, .report-chart').forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      if (!scrolls || box.hasAttribute('tabindex') || box.querySelector('a[href], button, input, select, textarea')) {
        return;
      }
      var card = box.closest('section, .card, main');
      var heading = card && card.querySelector('h1, h2, h3');
      box.tabIndex = 0;
      box.setAttribute('role', 'region');
      if (heading) { box.setAttribute('aria-label', heading.textContent.replace(/\s+/g, ' ').trim()); }
    });
  }
  scrollableBoxes();
  window.addEventListener('load', scrollableBoxes);  // once fonts and images have their sizes
  window.addEventListener('resize', scrollableBoxes);

  // --- Keyboard shortcuts (their list: the #shortcuts dialog in templates/admin/console_base.html) -------------
  // A letter is a shortcut only when nobody is typing: never in a field, never with Alt, Ctrl or ⌘ (the browser's
  // and the system's own keys), never while a dialog is open; Ctrl+Enter (⌘+Enter) sends the action form it is
  // typed in. A key whose form is not on the page does nothing.

  var help = document.getElementById('shortcuts');

  // A box that takes text (a tick box or a radio button takes none: j moves on from a row's tick box).
  function typingIn(element) {
    return !!(element && element.closest && element.closest(
      'input:not([type="checkbox"]):not([type="radio"]):not([type="button"]):not([type="submit"])' +
      ':not([type="reset"]), textarea, select, [contenteditable]:not([contenteditable="false"])'));
  }

  function dialogOpen() {
    return !!document.querySelector('dialog[open], .modal.show, [role="dialog"][aria-hidden="false"]');
  }

  function visible(element) {
    return !!(element.offsetWidth || element.offsetHeight || element.getClientRects().length);
  }

  // Focus an element and bring it into view (the browser scrolls to a focused element only as far as it must).
  function show(element) {
    element.focus();
    if (element.scrollIntoView) { element.scrollIntoView({block: 'center'}); }
  }

  // --- lists: j/k choose a row (the focus on its case link), Enter or o opens it, / searches ---

  var list = document.querySelector('table.model-list');
  var currentClass = 'kb-current';

  function rowLink(row) {
    return row.querySelector('td.col-tracking_no a[href]') ||
           row.querySelector('a[href]:not([href^="javascript:"]):not([href="#"])');
  }

  function rows() {
    if (!list) { return []; }
    return Array.prototype.filter.call(list.querySelectorAll('tbody tr'), function (row) {
      return rowLink(row) && visible(row);
    });
  }

  function currentRow(all) {
    var active = document.activeElement;
    var row = active && active.closest ? active.closest('tr') : null;
    if (row && all.indexOf(row) >= 0) { return row; }
    return list ? list.querySelector('tbody tr.' + currentClass) : null;
  }

  function choose(row) {
    if (!row) { return; }
    Array.prototype.forEach.call(list.querySelectorAll('tbody tr.' + currentClass), function (other) {
      other.classList.remove(currentClass);
    });
    row.classList.add(currentClass);
    show(rowLink(row));
  }

  function moveSelection(step) {
    var all = rows();
    if (!all.length) { return false; }
    var index = all.indexOf(currentRow(all));
    var next = index < 0 ? 0 : Math.min(all.length - 1, Math.max(0, index + step));
    choose(all[next]);
    return true;
  }

  function openSelection() {
    var all = rows();
    var row = currentRow(all);
    if (!row) { return false; }
    rowLink(row).click();
    return true;
  }

  if (list) {  // a click or Tab onto a row's link makes it the chosen row too
    list.addEventListener('focusin', function (event) {
      var row = event.target.closest('tr');
      if (row && rows().indexOf(row) >= 0 && !row.classList.contains(currentClass)) {
        Array.prototype.forEach.call(list.querySelectorAll('tbody tr.' + currentClass), function (other) {
          other.classList.remove(currentClass);
        });
        row.classList.add(currentClass);
      }
    });
  }

  function focusSearch() {
    var search = document.querySelector('form[role="search"] input[name="search"]');
    if (!search || !visible(search)) { return false; }
    show(search);
    search.select();
    return true;
  }

  // --- the case page: a, t, r go to an action's form; n to the next case ---

  function actionForm(actions) {
    for (var i = 0; i < actions.length; i++) {
      var form = document.querySelector('#action-' + actions[i] + ' form');
      if (form) { return form; }
    }
    return null;
  }

  function fields(form, selector) {
    return Array.prototype.filter.call(form.querySelectorAll(selector), function (field) {
      return !field.disabled && field.type !== 'hidden' && visible(field);
    });
  }

  function goToForm(actions, preferred) {
    var form = actionForm(actions);
    if (!form) { return false; }
    var target = (preferred && fields(form, preferred)[0]) ||
                 fields(form, 'input, select, textarea')[0] ||
                 fields(form, 'button[type="submit"], button:not([type])')[0];
    if (!target) { return false; }
    show(target);
    return true;
  }

  function nextCase() {
    var next = document.getElementById('next-case');
    if (!next) { return false; }
    next.click();
    return true;
  }

  // --- the list of keys ---

  var opener = null;

  function openHelp() {
    if (!help || help.open) { return false; }
    opener = document.activeElement;
    if (help.showModal) { help.showModal(); } else { help.setAttribute('open', ''); }
    document.getElementById('shortcuts-close').focus();
    return true;
  }

  function closeHelp() {
    if (!help || !help.open) { return; }
    if (help.close) { help.close(); } else { help.removeAttribute('open'); restoreFocus(); }
  }

  // The focus goes back where it was (the browser does so itself on Esc; "close" comes later, when a key may already
  // have moved it on: then it stays there).
  function restoreFocus() {
    var active = document.activeElement;
    var lost = !active || active === document.body || help.contains(active);
    if (lost && opener && opener.focus && document.contains(opener) && opener !== document.body) { opener.focus(); }
    opener = null;
  }

  if (help) {
    help.addEventListener('close', restoreFocus);
    document.getElementById('shortcuts-close').addEventListener('click', closeHelp);
    document.getElementById('shortcuts-open').addEventListener('click', openHelp);
    help.addEventListener('click', function (event) {  // a click on the backdrop, outside the box, closes it
      var box = help.getBoundingClientRect();
      if (event.target === help && (event.clientX < box.left || event.clientX > box.right ||
                                    event.clientY < box.top || event.clientY > box.bottom)) {
        closeHelp();
      }
    });
  }

  // --- one listener ---

  function submitForm(form) {
    var button = form.querySelector('button[type="submit"], button:not([type]), input[type="submit"]');
    if (form.requestSubmit) {  // fires "submit", so a data-confirm form still asks first
      form.requestSubmit(button || undefined);
    } else if (form.dispatchEvent(new Event('submit', {cancelable: true}))) {
      form.submit();
    }
  }

  var keys = {
    'j': function () { return moveSelection(1); },
    'k': function () { return moveSelection(-1); },
    'o': openSelection,
    '/': focusSearch,
    'a': function () { return goToForm(['accept_and_transfer', 'accept']); },
    't': function () { return goToForm(['accept_and_transfer', 'transfer'], 'select[name="department_id"]'); },
    'r': function () { return goToForm(['reply', 'resolve', 'explain'], 'textarea'); },
    'n': nextCase,
    '?': openHelp
  };

  document.addEventListener('keydown', function (event) {
    if (event.defaultPrevented || event.isComposing || event.keyCode === 229) { return; }  // an input method at work
    var key = event.key;
    if (key === 'Enter' && (event.ctrlKey || event.metaKey) && !event.altKey) {
      var form = event.target.closest && event.target.closest('.action-card form');
      if (form && !dialogOpen()) {
        event.preventDefault();
        submitForm(form);
      }
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey || dialogOpen() || typingIn(event.target)) { return; }
    if (key === 'Enter') {  // a focused link or button does its own Enter; this is for a row chosen but not focused
      var target = event.target;
      if (target === document.body || target === document.documentElement || target.id === 'main') {
        if (openSelection()) { event.preventDefault(); }
      }
      return;
    }
    if (key && key.length === 1 && !event.shiftKey) { key = key.toLowerCase(); }  // Caps Lock
    var action = Object.prototype.hasOwnProperty.call(keys, key) ? keys[key] : null;
    if (action && action()) { event.preventDefault(); }
  });
})();
