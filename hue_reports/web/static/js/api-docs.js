/* /api/docs: Swagger UI (vendored in static/vendor/swagger-ui) on this service's OpenAPI document.
   A file of its own, not an inline script: the page is sent with CSP script-src 'self'. */
(function () {
  'use strict';

  var root = document.getElementById('swagger-ui');
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute('data-spec-url'),
    domNode: root,
    deepLinking: true,
    // Nothing is sent anywhere else: no validator badge (it would call validator.swagger.io).
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    // "Try it out" keeps the bearer token typed in Authorize only for this tab's life.
    persistAuthorization: false
  });
}());
