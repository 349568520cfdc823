// REST calls with the signed-in token and this tab's device id. Errors come
// back as Error objects whose message is the server's readable message.

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export function createApi({ token, deviceId }) {
  async function call(method, path, body) {
    const headers = { Authorization: `Bearer ${token}`, 'X-Device-Id': deviceId };
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'NETWORK', 'The server cannot be reached; check your connection and retry.');
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = text; }
    }
    if (!res.ok) {
      const error = data && data.error ? data.error : { code: `HTTP_${res.status}`, message: text || res.statusText };
      throw new ApiError(res.status, error.code, `${error.message} (${error.code})`, data);
    }
    return data;
  }
  return {
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body),
    put: (path, body) => call('PUT', path, body),
    del: (path) => call('DELETE', path),
  };
}
