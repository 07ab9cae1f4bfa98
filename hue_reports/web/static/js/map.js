/* The public map: reports from GET /api/v1/public/reports for the visible area, refetched when the map
   moves or a filter changes. Below the server's clustering zoom the API answers counts per grid cell
   (drawn as circles with their count); from it on, points (grouped on screen by Leaflet.markercluster),
   unless the view is too dense for points (the server answers finer clusters, `dense: true`).
   The background tiles are decoration: markers never wait for them. */
(function () {
  'use strict';

  var H = window.HueReports;
  var container = document.getElementById('map');
  if (!container || !window.L || !H) { return; }

  var cfg = JSON.parse(container.getAttribute('data-config'));
  var labels = cfg.labels;
  var statusLine = document.getElementById('map-status');
  var form = document.getElementById('filters');
  var MAX_PAGES = 4;  // at most 4 pages of 5,000 points in one view
  var HASH = /^#(\d{1,2}(?:\.\d+)?)\/(-?\d{1,2}(?:\.\d+)?)\/(-?\d{1,3}(?:\.\d+)?)$/;

  var map = L.map(container, { zoomSnap: 1, minZoom: 3, maxZoom: Math.max(19, cfg.pointsZoom) });
  L.tileLayer(cfg.tileUrl, { attribution: cfg.tileAttribution, maxZoom: 19 }).addTo(map);

  var points = L.markerClusterGroup({
    showCoverageOnHover: false, maxClusterRadius: 40, spiderfyOnMaxZoom: true, disableClusteringAtZoom: 18,
    chunkedLoading: true
  }).addTo(map);
  var cells = L.featureGroup().addTo(map);

  function initialView() {
    var match = HASH.exec(window.location.hash);
    if (match) {
      map.setView([parseFloat(match[2]), parseFloat(match[3])], Math.floor(parseFloat(match[1])));
    } else if (cfg.bounds) {
      map.fitBounds(cfg.bounds);
    } else {
      map.setView([0, 0], 3);
    }
  }

  function rememberView() {
    var c = map.getCenter();
    var hash = '#' + map.getZoom() + '/' + c.lat.toFixed(5) + '/' + c.lng.toFixed(5);
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, '', window.location.pathname + window.location.search + hash);
    }
  }

  var FILTERS = ['category', 'status', 'from', 'to'];

  /* The filters' values, also kept in the address (a link or a reload shows the same reports). */
  function filters() {
    var params = new URLSearchParams();
    var inAddress = {};
    FILTERS.forEach(function (name) {
      var field = form.elements[name];
      inAddress[name] = field ? field.value : '';
      if (field && field.value) { params.set(name, field.value); }
    });
    H.setQuery(inAddress);
    return params;
  }

  function bbox() {
    var b = map.getBounds();
    var west = Math.max(b.getWest(), -180), east = Math.min(b.getEast(), 180);
    var south = Math.max(b.getSouth(), -90), north = Math.min(b.getNorth(), 90);
    return [west, south, east, north].map(function (v) { return v.toFixed(6); }).join(',');
  }

  function say(text, state) {
    statusLine.textContent = text;
    statusLine.setAttribute('data-state', state);
  }

  function getJSON(url, signal) {
    return fetch(url, { signal: signal, headers: { Accept: 'application/json' } }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var error = (body && body.error) || {};
          throw new Error((cfg.lang === 'vi' && error.message_vi) || error.message || response.statusText);
        }
        return body;
      });
    });
  }

  /* ---- Points ---- */

  function row(label, value) {
    if (!value) { return null; }
    return H.el('div', { 'class': 'popup-row' }, [H.el('dt', { text: label }), H.el('dd', { text: value })]);
  }

  function pick(label) {
    if (!label) { return ''; }
    return label[cfg.lang] || label.vi || '';
  }

  function reportUrl(code) {
    return cfg.reportUrl.replace('CODE', encodeURIComponent(code));
  }

  function popupContent(p) {
    var body = [];
    if (p.thumbnail_url) {
      var img = H.el('img', { 'class': 'popup-thumb', src: p.thumbnail_url, alt: '', width: 240, height: 140 });
      img.addEventListener('error', function () { img.remove(); });  // still being processed
      body.push(img);
    }
    body.push(H.el('p', { 'class': 'popup-title' }, [H.el('strong', { text: pick(p.category.name) })]));
    var badges = [H.el('span', { 'class': 'status-badge status-' + p.status, text: cfg.statuses[p.status] || p.status })];
    if (p.overdue) { badges.push(H.el('span', { 'class': 'status-badge status-overdue', text: cfg.overdue })); }
    body.push(H.el('p', { 'class': 'popup-status' }, badges));
    body.push(H.el('dl', { 'class': 'popup-facts' }, [
      row(labels.agency, p.agency ? pick(p.agency.name) : labels.no_agency),
      row(labels.created_at, H.formatTime(p.created_at, cfg.lang, cfg.timezone)),
      row(labels.routed_at, H.formatTime(p.routed_at, cfg.lang, cfg.timezone)),
      row(labels.resolved_at, H.formatTime(p.resolved_at, cfg.lang, cfg.timezone)),
      p.supporters ? row(labels.supporters, String(p.supporters)) : null
    ]));
    body.push(H.el('a', { 'class': 'popup-link', href: reportUrl(p.code), text: labels.details + ' ' + p.code }));
    return H.el('div', { 'class': 'popup' }, body);
  }

  function pointMarker(feature) {
    var p = feature.properties;
    var c = feature.geometry.coordinates;
    var icon = L.divIcon({
      className: 'hr-pin status-' + p.status + (p.overdue ? ' hr-pin-overdue' : ''),
      iconSize: [18, 18], iconAnchor: [9, 9], popupAnchor: [0, -8], html: ''
    });
    var marker = L.marker([c[1], c[0]], {
      icon: icon, keyboard: true,
      title: pick(p.category.name) + ' · ' + (cfg.statuses[p.status] || p.status) + ' · ' + p.code
    });
    marker.on('add', function () {
      var node = marker.getElement();
      if (node) {
        node.setAttribute('data-code', p.code);
        node.setAttribute('data-status', p.status);
      }
    });
    marker.bindPopup(function () { return popupContent(p); }, { minWidth: 220, maxWidth: 280 });
    return marker;
  }

  /* The view's data: clusters (below the clustering zoom, or where the view is too dense for points: the
     server decides) or points, page after page. Resolves to {clusters: body} or {features, truncated}. */
  function loadView(params, signal) {
    var features = [];
    function page(cursor, n) {
      var q = new URLSearchParams(params);
      if (cursor) { q.set('cursor', cursor); }
      return getJSON(cfg.api + '?' + q.toString(), signal).then(function (body) {
        if (body.clustered) { return { clusters: body }; }
        features = features.concat(body.features);
        if (body.has_more && n + 1 < MAX_PAGES) { return page(body.next_cursor, n + 1); }
        return { features: features, truncated: !!body.has_more };
      });
    }
    return page(null, 0);
  }

  /* The markers on the map by report id, with the data they were drawn from: a refetch (the map moved, e.g.
     to make room for a popup) keeps the markers that did not change, and their open popup. */
  var drawn = {};

  function drawPoints(result) {
    cells.clearLayers();
    var next = {}, added = [], removed = [];
    result.features.forEach(function (feature) {
      var signature = JSON.stringify(feature);
      var old = drawn[feature.id];
      if (old && old.signature === signature) {
        next[feature.id] = old;
        return;
      }
      if (old) { removed.push(old.marker); }
      next[feature.id] = { marker: pointMarker(feature), signature: signature };
      added.push(next[feature.id].marker);
    });
    Object.keys(drawn).forEach(function (id) {
      if (!next[id]) { removed.push(drawn[id].marker); }
    });
    points.removeLayers(removed);
    points.addLayers(added);
    drawn = next;
    var n = result.features.length;
    var text = H.fill(labels.shown, { n: H.formatNumber(n, cfg.lang, 0) });
    if (result.truncated) { text += ' (' + H.fill(labels.truncated, { n: H.formatNumber(n, cfg.lang, 0) }) + ')'; }
    return { shown: n, text: text };
  }

  /* ---- Clusters from the server ---- */

  function cellSize(count) {
    return Math.round(30 + 10 * Math.log10(Math.max(count, 1)));
  }

  /* Neighbouring cells whose circles would overlap on screen are drawn as one circle with their sum. */
  function mergeCells(features) {
    var groups = [];
    features.slice().sort(function (a, b) { return b.properties.count - a.properties.count; }).forEach(function (f) {
      var c = f.geometry.coordinates;
      var at = map.latLngToLayerPoint([c[1], c[0]]);
      var size = cellSize(f.properties.count);
      var near = groups.filter(function (g) { return g.at.distanceTo(at) < (g.size + size) / 2; })[0];
      if (!near) {
        groups.push({ at: at, size: size, count: 0, lat: 0, lon: 0, parts: [], byStatus: {} });
        near = groups[groups.length - 1];
      }
      var n = f.properties.count;
      near.lat = (near.lat * near.count + c[1] * n) / (near.count + n);
      near.lon = (near.lon * near.count + c[0] * n) / (near.count + n);
      near.count += n;
      near.size = cellSize(near.count);
      near.parts.push(n);
      Object.keys(f.properties.by_status).forEach(function (s) {
        near.byStatus[s] = (near.byStatus[s] || 0) + f.properties.by_status[s];
      });
    });
    return groups;
  }

  function cellMarker(group, dense) {
    var title = H.fill(labels.cluster_title, { n: H.formatNumber(group.count, cfg.lang, 0) }) + '\n' +
      Object.keys(group.byStatus).map(function (s) {
        return (cfg.statuses[s] || s) + ': ' + group.byStatus[s];
      }).join('\n');
    var size = group.size;
    var marker = L.marker([group.lat, group.lon], {
      title: title, keyboard: true, zIndexOffset: group.count,
      icon: L.divIcon({
        className: 'hr-cell', iconSize: [size, size], iconAnchor: [size / 2, size / 2],
        html: '<span>' + Number(group.count) + '</span>'
      })
    });
    marker.on('add', function () {
      var node = marker.getElement();
      if (node) {
        node.setAttribute('data-count', String(group.count));
        node.setAttribute('data-parts', group.parts.join(','));  // the server's cells drawn here
      }
    });
    marker.on('click', function () {
      // (a dense view's clusters open towards the zoom where the server always answers points)
      map.setView(marker.getLatLng(), Math.min(map.getZoom() + 2, dense ? cfg.pointsZoom : cfg.clusterBelowZoom));
    });
    return marker;
  }

  function drawCells(body) {
    points.clearLayers();
    drawn = {};
    cells.clearLayers();
    mergeCells(body.features).forEach(function (g) { cells.addLayer(cellMarker(g, body.dense)); });
    return { shown: body.total, text: H.fill(labels.shown_clusters, { n: H.formatNumber(body.total, cfg.lang, 0) }) };
  }

  /* ---- Loading ---- */

  var controller = null;
  var serial = 0;

  function load() {
    if (controller) { controller.abort(); }
    controller = new AbortController();
    var mine = ++serial;
    var zoom = Math.floor(map.getZoom());
    var params = filters();
    params.set('bbox', bbox());
    params.set('zoom', String(zoom));
    container.setAttribute('data-state', 'loading');
    say(labels.loading, 'loading');
    var clustered = false;
    loadView(params, controller.signal).then(function (result) {
      clustered = !!result.clusters;
      return clustered ? drawCells(result.clusters) : drawPoints(result);
    }).then(function (done) {
      if (mine !== serial) { return; }
      container.setAttribute('data-query', params.toString());
      container.setAttribute('data-mode', clustered ? 'clusters' : 'points');
      container.setAttribute('data-shown', String(done.shown));
      container.setAttribute('data-state', 'ready');
      say(done.text, 'ready');
    }).catch(function (error) {
      if (mine !== serial || (error && error.name === 'AbortError')) { return; }
      container.setAttribute('data-state', 'error');
      say(labels.load_error + ' ' + (error && error.message ? error.message : ''), 'error');
    });
  }

  var timer = null;
  function loadSoon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(load, 150);
  }

  map.on('moveend', function () { rememberView(); loadSoon(); });
  form.addEventListener('change', loadSoon);
  form.addEventListener('submit', function (event) { event.preventDefault(); loadSoon(); });
  form.addEventListener('reset', function () { window.setTimeout(loadSoon, 0); });
  if (window.matchMedia && window.matchMedia('(max-width: 640px)').matches) {
    document.getElementById('filters-panel').removeAttribute('open');  // the map first on a phone
  }

  initialView();
  loadSoon();
}());
