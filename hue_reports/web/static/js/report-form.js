/* The residents' report form (/report): a pin on the map or the browser's position, photo previews, and
   the submission with an Idempotency-Key made once on this page, so that a double tap or a retry after a
   lost answer makes one report (the server replays the first answer). */
(function () {
  'use strict';

  var form = document.getElementById('report-form');
  if (!form || !window.L || !window.FormData || !window.fetch) { return; }
  var cfg = JSON.parse(form.getAttribute('data-config'));
  var H = window.HueReports;
  var labels = cfg.labels;
  var byId = function (id) { return document.getElementById(id); };
  var lat = byId('lat'), lon = byId('lon'), accuracy = byId('accuracy_m');
  var pinStatus = byId('pin-status'), formError = byId('form-error'), submit = byId('submit-report');

  /* 128 random bits as hex (crypto.getRandomValues works on plain http too, unlike randomUUID). */
  function newKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }
  var idempotencyKey = newKey();
  form.setAttribute('data-idempotency-key', idempotencyKey);

  // --- the map and its pin ------------------------------------------------------------------------------
  var map = L.map('pick-map', { scrollWheelZoom: false });
  L.tileLayer(cfg.tileUrl, { attribution: cfg.tileAttribution, maxZoom: 19 }).addTo(map);
  if (cfg.bounds) { map.fitBounds(cfg.bounds); } else { map.setView([0, 0], 2); }  // (no city loaded yet)
  var pin = null, circle = null;

  function setPin(latlng, metres) {
    var point = L.latLng(latlng);
    lat.value = point.lat.toFixed(6);
    lon.value = point.lng.toFixed(6);
    accuracy.value = metres ? String(Math.round(metres)) : '';
    if (!pin) {
      pin = L.marker(point, { draggable: true, keyboard: true }).addTo(map);
      pin.on('dragend', function () { setPin(pin.getLatLng(), null); });
    } else {
      pin.setLatLng(point);
    }
    if (circle) { map.removeLayer(circle); circle = null; }
    if (metres) { circle = L.circle(point, { radius: metres, weight: 1, fillOpacity: 0.1 }).addTo(map); }
    var text = H.fill(labels.pin_set, { lat: lat.value, lon: lon.value });
    pinStatus.textContent = metres ? text + ' ' + H.fill(labels.accuracy, { m: Math.round(metres) }) : text;
    pinStatus.setAttribute('data-state', 'set');
    showFieldError('lat', '');
  }

  map.on('click', function (event) { setPin(event.latlng, null); });

  byId('locate').addEventListener('click', function () {
    if (!navigator.geolocation) { pinStatus.textContent = labels.locate_failed; return; }
    pinStatus.textContent = labels.locating;
    navigator.geolocation.getCurrentPosition(function (position) {
      var here = [position.coords.latitude, position.coords.longitude];
      setPin(here, position.coords.accuracy);
      map.setView(here, Math.max(map.getZoom(), 17));
    }, function () {
      pinStatus.textContent = labels.locate_failed;
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  });

  // --- photos ---------------------------------------------------------------------------------------------
  var photos = byId('photos'), previews = byId('photo-previews');
  photos.addEventListener('change', function () {
    previews.textContent = '';
    Array.prototype.forEach.call(photos.files, function (file) {
      var item = H.el('li', { 'class': 'photo-preview' });
      if (window.URL && URL.createObjectURL && /^image\/(jpeg|png|webp|gif)$/.test(file.type)) {
        item.appendChild(H.el('img', { src: URL.createObjectURL(file), alt: file.name }));
      } else {
        item.appendChild(H.el('span', { text: file.name }));
      }
      previews.appendChild(item);
    });
    showFieldError('photos', checkPhotos());
  });

  function checkPhotos() {
    var n = photos.files.length;
    if (n === 0) { return labels.photos_missing; }
    if (n > cfg.maxPhotos) { return H.fill(labels.too_many_photos, { n: cfg.maxPhotos }); }
    return '';
  }

  // --- errors ---------------------------------------------------------------------------------------------
  function showFieldError(field, text) {
    var node = form.querySelector('.field-error[data-field="' + field + '"]');
    if (!node) { return false; }
    node.textContent = text || '';
    node.hidden = !text;
    return true;
  }

  function clearErrors() {
    Array.prototype.forEach.call(form.querySelectorAll('.field-error'), function (node) {
      node.textContent = '';
      node.hidden = true;
    });
    formError.hidden = true;
    formError.textContent = '';
  }

  function showError(text) {
    formError.textContent = text;
    formError.hidden = false;
    formError.scrollIntoView({ block: 'center' });
  }

  function showApiError(body) {
    var error = (body && body.error) || {};
    var text = (cfg.lang === 'vi' ? error.message_vi : error.message) || error.message || labels.send_failed;
    var fields = error.fields || {};
    Object.keys(fields).forEach(function (name) {
      var problems = fields[name];
      var said = Array.isArray(problems) ? problems.join(' ') : String(problems);
      showFieldError(name === 'lon' ? 'lat' : name, said);
    });
    showError(text);
  }

  // --- sending --------------------------------------------------------------------------------------------
  var busy = false;

  function done(body) {
    form.hidden = true;
    var panel = byId('report-done');
    byId('done-code').textContent = body.code;
    var link = byId('tracking-link');
    var absolute = new URL(body.tracking_url, window.location.href).href;
    link.href = body.tracking_url;
    link.textContent = absolute;
    if (body.location) {
      byId('done-map').href = byId('done-map').getAttribute('href') + '#18/' + body.location.lat.toFixed(5) + '/' +
        body.location.lon.toFixed(5);
    }
    panel.setAttribute('data-code', body.code);
    panel.hidden = false;
    window.scrollTo(0, 0);
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (busy) { return; }  // a double tap while the first is on its way
    clearErrors();
    var photoProblem = checkPhotos();
    if (photoProblem) { showFieldError('photos', photoProblem); showError(photoProblem); return; }
    busy = true;
    var original = submit.getAttribute('data-label');
    submit.disabled = true;
    submit.textContent = labels.sending;
    fetch(cfg.submit, {
      method: 'POST',
      body: new FormData(form),
      headers: { 'Idempotency-Key': idempotencyKey, 'Accept': 'application/json' },
      credentials: 'same-origin'
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (response.status === 201 && body) {
          done(body);
        } else if (body && response.status < 500) {
          showApiError(body);
        } else {
          showError(labels.send_failed);  // the same key next time: a report stored meanwhile is replayed
        }
      });
    }, function () {
      showError(labels.send_failed);
    }).then(function () {
      busy = false;
      submit.disabled = false;
      submit.textContent = original;
    });
  });
  submit.setAttribute('data-label', submit.textContent);
}());
