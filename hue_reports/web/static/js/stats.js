/* The accountability page: the agencies' leaderboard (GET /api/v1/public/metrics?group_by=agency), sortable
   by any column, and the monthly trend (group_by=month) drawn as SVG. Column labels come from the API's
   `fields`, so Vietnamese and English labels have one source. null is "not enough data": shown as "—". */
(function () {
  'use strict';

  var H = window.HueReports;
  var root = document.getElementById('stats');
  if (!root || !H) { return; }

  var cfg = JSON.parse(root.getAttribute('data-config'));
  var labels = cfg.labels;
  var table = document.getElementById('leaderboard');
  var trend = document.getElementById('trend');
  var errorBox = document.getElementById('stats-error');
  var asOf = document.getElementById('stats-as-of');
  var csvLink = document.getElementById('csv-link');
  var form = document.getElementById('stats-period');
  var SVG = 'http://www.w3.org/2000/svg';
  var RATES = /_rate$/;
  var HOURS = /hours/;
  var sortState = { col: null, dir: null };

  function pick(label, fallback) {
    if (!label) { return fallback || ''; }
    if (typeof label === 'string') { return label; }
    return label[cfg.lang] || label.vi || fallback || '';
  }

  function fieldLabel(fields, name) {
    return pick(fields && fields[name], name);
  }

  function formatValue(col, value, group) {
    if (value === null || value === undefined) { return labels.dash; }
    if (RATES.test(col)) { return H.formatNumber(value * 100, cfg.lang, 0) + ' %'; }
    if (HOURS.test(col)) { return H.formatNumber(value, cfg.lang, 1); }
    if (col === 'satisfaction_mean') {
      return H.formatNumber(value, cfg.lang, 1) + ' (' + H.formatNumber(group.satisfaction_count || 0, cfg.lang, 0) + ')';
    }
    return H.formatNumber(value, cfg.lang, 1);
  }

  function rememberPeriod() {
    H.setQuery({ from: form.elements.from.value, to: form.elements.to.value });
  }

  function periodParams(groupBy) {
    var params = new URLSearchParams({ group_by: groupBy });
    ['from', 'to'].forEach(function (name) {
      var field = form.elements[name];
      if (field && field.value) { params.set(name, field.value); }
    });
    return params;
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: 'application/json' } }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var error = (body && body.error) || {};
          var e = new Error((cfg.lang === 'vi' && error.message_vi) || error.message || response.statusText);
          e.status = response.status;
          throw e;
        }
        return body;
      });
    });
  }

  /* ---- The leaderboard ---- */

  function cell(tag, col, value, text) {
    var attrs = { 'data-col': col, text: text };
    if (value !== null && value !== undefined) { attrs['data-value'] = String(value); }
    if (col !== 'name') { attrs['class'] = 'num'; }
    return H.el(tag, attrs);
  }

  function groupRow(group, key) {
    var name = pick(group.name, group.key);
    var cells = [cell('th', 'name', null, name)];
    cells[0].setAttribute('scope', 'row');
    cfg.columns.forEach(function (col) {
      cells.push(cell('td', col, group[col], formatValue(col, group[col], group)));
    });
    return H.el('tr', { 'data-key': key }, cells);
  }

  function header(fields) {
    var cols = [{ name: 'name', label: labels.agency }].concat(cfg.columns.map(function (col) {
      return { name: col, label: fieldLabel(fields, col) };
    }));
    return H.el('tr', {}, cols.map(function (col) {
      var button = H.el('button', { type: 'button', 'class': 'sort', 'data-col': col.name, text: col.label });
      button.addEventListener('click', function () { sortBy(col.name); });
      return H.el('th', { scope: 'col', 'data-col': col.name, 'aria-sort': 'none',
                          'class': col.name === 'name' ? null : 'num' }, [button]);
    }));
  }

  function sortValue(row, col) {
    var td = row.querySelector('[data-col="' + col + '"]');
    if (col === 'name') { return td.textContent; }
    var raw = td.getAttribute('data-value');
    return raw === null ? null : parseFloat(raw);
  }

  /* Numbers: largest first on the first click; names: A to Z. A second click reverses. Nulls stay last. */
  function sortBy(col) {
    var dir;
    if (sortState.col === col) {
      dir = sortState.dir === 'ascending' ? 'descending' : 'ascending';
    } else {
      dir = col === 'name' ? 'ascending' : 'descending';
    }
    sortState = { col: col, dir: dir };
    var sign = dir === 'ascending' ? 1 : -1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortValue(a, col), y = sortValue(b, col);
      if (x === null || y === null) { return (x === null) - (y === null); }
      if (col === 'name') { return sign * x.localeCompare(y, cfg.lang); }
      return sign * (x - y);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.setAttribute('aria-sort', th.getAttribute('data-col') === col ? dir : 'none');
    });
    root.setAttribute('data-sort', col + ':' + dir);
  }

  function drawLeaderboard(data) {
    table.tHead.replaceChildren(header(data.fields));
    table.tBodies[0].replaceChildren.apply(table.tBodies[0], data.groups.map(function (g) {
      return groupRow(g, g.key);
    }));
    var total = data.total ? groupRow(Object.assign({}, data.total, { name: labels.whole_city }), 'total') : null;
    table.tFoot.replaceChildren.apply(table.tFoot, total ? [total] : []);
    if (sortState.col) {
      var again = sortState;
      sortState = { col: again.col, dir: again.dir === 'ascending' ? 'descending' : 'ascending' };
      sortBy(again.col);
    }
    asOf.textContent = data.as_of ? H.fill(labels.as_of, { t: H.formatTime(data.as_of, cfg.lang, cfg.timezone) }) : '';
  }

  /* ---- The monthly trend ---- */

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function niceMax(values, isRate) {
    if (isRate) { return 1; }
    var max = Math.max.apply(null, values.concat([1]));
    var step = Math.pow(10, Math.floor(Math.log10(max)));
    return Math.ceil(max / step) * step;
  }

  function lineChart(title, col, months) {
    var isRate = RATES.test(col);
    var W = 640, Hh = 220, left = 52, right = 12, top = 16, bottom = 40;
    var values = months.map(function (g) { return g[col]; });
    var present = values.filter(function (v) { return v !== null && v !== undefined; });
    var max = niceMax(present, isRate);
    var x = function (i) { return left + (months.length === 1 ? (W - left - right) / 2 : i * (W - left - right) / (months.length - 1)); };
    var y = function (v) { return top + (Hh - top - bottom) * (1 - v / max); };
    var chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + Hh, role: 'img', 'class': 'chart', 'data-series': col,
                             'aria-label': title });
    chart.appendChild(svg('title', {}, title));
    [0, 0.5, 1].forEach(function (f) {
      var v = max * f;
      chart.appendChild(svg('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), 'class': 'grid' }));
      chart.appendChild(svg('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end', 'class': 'axis' },
                            isRate ? H.formatNumber(v * 100, cfg.lang, 0) + ' %' : H.formatNumber(v, cfg.lang, max < 10 ? 1 : 0)));
    });
    var every = Math.max(1, Math.ceil(months.length / 8));
    months.forEach(function (g, i) {
      if (i % every === 0 || i === months.length - 1) {
        chart.appendChild(svg('text', { x: x(i), y: Hh - bottom + 18, 'text-anchor': 'middle', 'class': 'axis' }, g.key));
      }
    });
    var path = '';
    values.forEach(function (v, i) {
      if (v === null || v === undefined) { return; }
      var previous = i > 0 ? values[i - 1] : null;
      path += (previous === null || previous === undefined ? 'M' : 'L') + x(i).toFixed(1) + ',' + y(v).toFixed(1);
    });
    if (path) { chart.appendChild(svg('path', { d: path, 'class': 'line' })); }
    if (!present.length) {
      chart.appendChild(svg('text', { x: (left + W - right) / 2, y: (top + Hh - bottom) / 2, 'text-anchor': 'middle',
                                      'class': 'axis no-data' }, labels.dash + ' ' + labels.no_data));
    }
    values.forEach(function (v, i) {
      if (v === null || v === undefined) { return; }
      var dot = svg('circle', { cx: x(i), cy: y(v), r: 4, 'class': 'dot', 'data-month': months[i].key });
      dot.appendChild(svg('title', {}, months[i].key + ': ' + formatValue(col, v, months[i])));
      chart.appendChild(dot);
    });
    return H.el('figure', { 'class': 'trend-chart' }, [H.el('figcaption', { text: title }), chart]);
  }

  function drawTrend(data) {
    var months = data.groups.slice().sort(function (a, b) { return a.key < b.key ? -1 : a.key > b.key ? 1 : 0; });
    if (!months.length) {
      trend.replaceChildren(H.el('p', { 'class': 'muted', text: labels.no_data }));
      return;
    }
    trend.replaceChildren.apply(trend, cfg.trend.map(function (col) {
      return lineChart(fieldLabel(data.fields, col), col, months);
    }));
  }

  /* ---- Loading ---- */

  function load() {
    root.setAttribute('data-state', 'loading');
    errorBox.hidden = true;
    csvLink.setAttribute('href', cfg.csv + '?' + periodParams('agency').toString());
    Promise.all([
      getJSON(cfg.api + '?' + periodParams('agency').toString()),
      getJSON(cfg.api + '?' + periodParams('month').toString())
    ]).then(function (answers) {
      drawLeaderboard(answers[0]);
      drawTrend(answers[1]);
      root.setAttribute('data-state', 'ready');
    }).catch(function (error) {
      errorBox.textContent = labels.stats_error + (error && error.message ? ' (' + error.message + ')' : '');
      errorBox.hidden = false;
      root.setAttribute('data-state', 'error');
    });
  }

  form.addEventListener('submit', function (event) { event.preventDefault(); rememberPeriod(); load(); });
  load();
}());
