/* Shared helpers of the public pages (no build step, no inline script: CSP script-src 'self'). */
(function () {
  'use strict';

  var LOCALES = { vi: 'vi-VN', en: 'en-GB' };

  function locale(lang) {
    return LOCALES[lang] || LOCALES.vi;
  }

  /* An ISO date-time in the city's time zone, e.g. 21/11/2026, 08:05. */
  function formatTime(iso, lang, timeZone) {
    if (!iso) { return ''; }
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return iso; }
    try {
      return new Intl.DateTimeFormat(locale(lang), {
        timeZone: timeZone || undefined, year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', hour12: false
      }).format(date);
    } catch (e) {
      return date.toISOString();
    }
  }

  function formatNumber(value, lang, digits) {
    return new Intl.NumberFormat(locale(lang), {
      maximumFractionDigits: digits === undefined ? 1 : digits,
      minimumFractionDigits: 0
    }).format(value);
  }

  /* "{n} reports" with its placeholders filled. */
  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : match;
    });
  }

  /* A DOM element with attributes and children (text nodes for strings: never parsed as HTML). */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) { return; }
      if (name === 'text') { node.textContent = value; } else { node.setAttribute(name, value); }
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) { return; }
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return node;
  }

  /* The other language keeps the page as it is now: the filters in the query string and the map's
     #zoom/lat/lon, which the scripts keep up to date in the address. */
  function keepStateOnLanguageToggle() {
    var toggle = document.getElementById('lang-toggle');
    if (!toggle) { return; }
    toggle.addEventListener('click', function () {
      var params = new URLSearchParams(window.location.search);
      params.set('lang', toggle.getAttribute('data-lang'));
      toggle.setAttribute('href', window.location.pathname + '?' + params.toString() + window.location.hash);
    });
  }

  /* Put `params` (name -> value, '' to drop) in the address without reloading. */
  function setQuery(params) {
    if (!window.history || !window.history.replaceState) { return; }
    var query = new URLSearchParams(window.location.search);
    Object.keys(params).forEach(function (name) {
      if (params[name]) { query.set(name, params[name]); } else { query.delete(name); }
    });
    var search = query.toString();
    window.history.replaceState(null, '', window.location.pathname + (search ? '?' + search : '') +
                                window.location.hash);
  }

  /* A page rendered in answer to a form (an error, a conflict) is a GET page of its own: show its address,
     so that a reload shows it again instead of sending the form again. */
  function showCanonicalAddress() {
    var canonical = document.body && document.body.getAttribute('data-canonical');
    if (canonical && window.history && window.history.replaceState &&
        canonical !== window.location.pathname + window.location.search) {
      window.history.replaceState(null, '', canonical);
    }
  }

  window.HueReports = { formatTime: formatTime, formatNumber: formatNumber, fill: fill, el: el, setQuery: setQuery };
  showCanonicalAddress();
  keepStateOnLanguageToggle();
}());
