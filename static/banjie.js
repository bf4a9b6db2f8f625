// Every public page: the 长辈模式 switch (tickets/elder.py says where the choice lives and why).
// Without this script the switch is a plain form to /elder that sets the cookie and comes back; with it the page
// changes in place (class "elder" on <html>, which banjie.css reads), the cookie is written here, and localStorage
// keeps a copy that restores the cookie when the browser dropped it.
(function () {
  'use strict';
  var COOKIE = 'banjie_elder';
  var KEY = 'banjie-elder';
  var MAX_AGE = 365 * 24 * 3600;
  var root = document.documentElement;

  function cookie() {
    var match = document.cookie.match(/(?:^|;\s*)banjie_elder=([01])(?:;|$)/);
    return match ? match[1] : null;
  }
  function writeCookie(value) {
    document.cookie = COOKIE + '=' + value + '; Path=/; Max-Age=' + MAX_AGE + '; SameSite=Lax' +
      (window.location.protocol === 'https:' ? '; Secure' : '');
  }
  function stored() {
    try { return window.localStorage.getItem(KEY); } catch (e) { return null; }  // storage may be blocked
  }
  function store(value) {
    try { window.localStorage.setItem(KEY, value); } catch (e) { /* the cookie still holds it */ }
  }

  function show(on) {
    root.classList.toggle('elder', on);
    Array.prototype.forEach.call(document.querySelectorAll('.elder-switch'), function (form) {
      var button = form.querySelector('button');
      var next = form.querySelector('input[name=on]');
      if (button) { button.setAttribute('aria-pressed', on ? 'true' : 'false'); }
      if (next) { next.value = on ? '0' : '1'; }  // what the form would ask for without this script
    });
  }

  // The cookie is what the server rendered this page by; localStorage only fills in when the cookie is gone.
  var current = cookie();
  if (current !== null) {
    store(current);
  } else if (stored() === '1' || stored() === '0') {
    writeCookie(stored());
    show(stored() === '1');
  }

  Array.prototype.forEach.call(document.querySelectorAll('.elder-switch'), function (form) {
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var on = !root.classList.contains('elder');
      var value = on ? '1' : '0';
      writeCookie(value);
      store(value);
      show(on);
    });
  });
}());
