// The JSON API of the same server, called with the agency's key kept in sessionStorage.
const KEY = "lgsp.key";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.errors = (body && body.errors) || [];
  }
}

export function key() {
  return sessionStorage.getItem(KEY);
}

export function setKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

export async function request(method, path, { json, yaml, raw = false, headers: extra = {} } = {}) {
  const headers = { Accept: "application/json", ...extra };
  const k = key();
  if (k) headers.Authorization = `Bearer ${k}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (yaml !== undefined) {
    headers["Content-Type"] = "application/yaml";
    body = yaml;
  }
  const response = await fetch(path, { method, headers, body });
  if (raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => request("GET", path);

let spec = null;

// The server's OpenAPI paths: a page whose endpoints the server lacks says so.
export async function paths() {
  if (spec === null) {
    try {
      spec = Object.keys((await get("/openapi.json")).paths || {});
    } catch {
      spec = [];
    }
  }
  return spec;
}

export async function firstPath(candidates) {
  const known = await paths();
  return candidates.find((p) => known.includes(p)) || null;
}

// Why an auditor reads: sent as X-Purpose (percent-encoded, so Vietnamese text passes).
export function purposeHeader(purpose) {
  return { "X-Purpose": encodeURIComponent(purpose) };
}

// Fetch `path` with the key and save the answer as `filename` (a link cannot carry the key).
export async function download(path, filename, headers = {}) {
  const response = await request("GET", path, { raw: true, headers });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
