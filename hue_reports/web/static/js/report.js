/* A report's location on a small map (its page works without it). */
(function () {
  'use strict';

  var container = document.getElementById('mini-map');
  if (!container || !window.L) { return; }
  var cfg = JSON.parse(container.getAttribute('data-config'));
  var map = L.map(container, { scrollWheelZoom: false }).setView([cfg.lat, cfg.lon], 17);
  L.tileLayer(cfg.tileUrl, { attribution: cfg.tileAttribution, maxZoom: 19 }).addTo(map);
  if (cfg.approximate) {
    // Only the ward is known (from the address): the area the report is in, not a pin.
    var area = L.circle([cfg.lat, cfg.lon], { radius: cfg.accuracy_m, weight: 2, color: '#b3261e',
                                               dashArray: '6 6', fillOpacity: 0.08 }).addTo(map);
    map.fitBounds(area.getBounds());
  } else {
    L.circleMarker([cfg.lat, cfg.lon], { radius: 9, weight: 3, color: '#b3261e', fillOpacity: 0.6 }).addTo(map);
  }
}());
