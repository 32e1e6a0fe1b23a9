// Starts Swagger UI on /schema without an inline script (see api/ui/schema.py).
window.addEventListener("DOMContentLoaded", function () {
  window.SwaggerUIBundle({
    url: "/schema/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
  });
});
