// The admin API (beep.admin.v1.AuthzAdminService), called with Connect's
// JSON protocol over fetch on Beep's own port, with the user's credentials:
// a bearer token when one is given, and the Kratos session cookie (same
// origin) otherwise.
const service = '/beep.admin.v1.AuthzAdminService/';

export class APIError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

export function token() { return localStorage.getItem('beep.playground.token') || ''; }
export function setToken(t) { localStorage.setItem('beep.playground.token', t); }

export async function call(method, body = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (token()) headers.Authorization = 'Bearer ' + token();
  const resp = await fetch(service + method, { method: 'POST', headers, body: JSON.stringify(body), credentials: 'same-origin' });
  const text = await resp.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { message: text }; }
  if (!resp.ok) throw new APIError(data.code || String(resp.status), data.message || resp.statusText);
  return data;
}
