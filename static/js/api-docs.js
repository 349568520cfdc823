// The API reference at /api/docs: Swagger UI (swagger-ui-dist, served from
// /vendor/swagger-ui/ by herald itself, no asset from the network) renders
// /api/openapi.json with a table of contents by tag, schemas, and "Try it
// out". Signed in to the dashboard in this browser, calls are authorized
// with that token at once; otherwise "Authorize" takes one.

const TOKEN_KEY = 'herald.token';

const ui = window.SwaggerUIBundle({
  url: '/api/openapi.json',
  dom_id: '#api-docs',
  deepLinking: true,
  docExpansion: 'list',
  defaultModelsExpandDepth: 1,
  displayRequestDuration: true,
  filter: true,
  persistAuthorization: false,
  tryItOutEnabled: false,
  // Every call carries this browser's device id, as the dashboard's do.
  requestInterceptor: (req) => {
    const device = localStorage.getItem('herald.deviceId');
    if (device && !req.headers['X-Device-Id']) req.headers['X-Device-Id'] = device;
    return req;
  },
  onComplete: () => {
    const token = localStorage.getItem(TOKEN_KEY);
    const status = document.getElementById('api-docs-auth');
    if (token) {
      ui.preauthorizeApiKey('bearer', token);
      status.textContent = 'Try it out uses the token you signed in to the dashboard with.';
    } else {
      status.textContent = 'Sign in to the dashboard (or press Authorize and paste a token) to try calls.';
    }
  },
});
window.heraldApiDocs = ui;
