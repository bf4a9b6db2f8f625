// The public form's window picker by area: city → county → township, one select per level, the root preselected.
// Progressive enhancement: without this script the form keeps its single select of every window (indented).
// The windows come from the page (data-windows, the same list as GET /api/v1/offices); the value posted is still
// the original select's `office_code`, set to the deepest level chosen.
(function () {
  'use strict';
  var picker = document.querySelector('.area-picker[data-windows]');
  if (!picker) { return; }
  var original = picker.querySelector('select[name=office_code]');
  var windows;
  try { windows = JSON.parse(picker.dataset.windows); } catch (e) { return; }
  if (!original || !Array.isArray(windows) || windows.length < 2) { return; }

  var byCode = {};
  var children = {};  // parent code ('' for the top) -> windows below it, in the page's order
  windows.forEach(function (w) {
    byCode[w.code] = w;
    var key = w.parent_code && byCode[w.parent_code] !== undefined ? w.parent_code : '';
    (children[key] = children[key] || []).push(w);
  });
  var MAX_LEVELS = 3;

  var field = original.closest('.field');
  var label = field.querySelector('label[for="' + original.id + '"]');
  original.hidden = true;
  original.setAttribute('aria-hidden', 'true');
  original.tabIndex = -1;
  if (label) { label.hidden = true; }
  var holder = document.createElement('div');
  holder.className = 'area-levels';
  field.insertBefore(holder, original);

  function levelLabel(level) {
    return picker.getAttribute('data-label-' + level) || level;
  }

  function pathTo(code) {  // the codes from the top down to this window
    var path = [];
    var seen = {};
    while (code && byCode[code] && !seen[code]) {
      seen[code] = true;
      path.unshift(code);
      code = byCode[code].parent_code;
    }
    return path;
  }

  function makeSelect(index, options, parent, chosen) {
    var wrap = document.createElement('div');
    wrap.className = 'area-level';
    var id = 'office-area-' + index;
    var caption = document.createElement('label');
    caption.htmlFor = id;
    caption.textContent = levelLabel(options[0].level);
    var select = document.createElement('select');
    select.id = id;
    select.dataset.level = String(index);
    if (parent) {
      var none = document.createElement('option');
      none.value = '';
      // a function, not the name itself: a replacement string reads $&, $' and $$ in a window's name
      none.textContent = (picker.dataset.none || '{name}').replace('{name}', function () { return parent.name; });
      select.appendChild(none);
    }
    options.forEach(function (w) {
      var option = document.createElement('option');
      option.value = w.code;
      option.textContent = w.name;
      select.appendChild(option);
    });
    select.value = chosen || (parent ? '' : options[0].code);
    select.addEventListener('change', function () { rebuild(index); });
    wrap.appendChild(caption);
    wrap.appendChild(select);
    holder.appendChild(wrap);
    return select;
  }

  function selects() {
    return Array.prototype.slice.call(holder.querySelectorAll('select'));
  }

  // Keep the selects up to `index`, then add the next levels below the deepest chosen window.
  function rebuild(index, path) {
    selects().slice(index + 1).forEach(function (s) { holder.removeChild(s.parentNode); });
    var current = selects();
    var deepest = '';
    current.forEach(function (s) { if (s.value) { deepest = s.value; } });
    var last = current[current.length - 1];
    while (last && last.value && current.length < MAX_LEVELS && children[last.value]) {
      var parent = byCode[last.value];
      last = makeSelect(current.length, children[last.value], parent, path && path[current.length]);
      current.push(last);
      if (last.value) { deepest = last.value; }
    }
    original.value = deepest;
  }

  var top = children[''] || [];
  if (!top.length) { return; }
  var path = pathTo(original.value);
  makeSelect(0, top, null, path[0]);
  rebuild(0, path);
})();
