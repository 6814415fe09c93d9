// The dashboard's protocol switch: h1 / h2 / h3, each an origin given in the URL
// (?h1=https://host:port&h2=https://host:port&h3=...). Every transport on the page is
// origin-relative, so switching loads this same page from the chosen origin and every transport
// follows. Pointing the clients at another origin from here instead would need CORS for fetch and
// EventSource (the app sends none) and would be refused by the WebSocket Origin check.
// Kept apart from dashboard.js: it knows nothing of the panels.

const LABELS = { "http/1.1": "h1", h2: "h2", h3: "h3" };
const NOT_SERVED = { h3: "h3: no ?h3= origin (pushlab serve --http2 --http3)" };

/** Origins from the query; anything that is not an http(s) URL is ignored. */
export function origins(search) {
  const params = new URLSearchParams(search);
  const out = {};
  for (const key of ["h1", "h2", "h3"]) {
    try {
      const url = new URL(params.get(key) ?? "");
      if (url.protocol === "https:" || url.protocol === "http:") out[key] = url.origin;
    } catch { /* absent or not a URL */ }
  }
  return out;
}

export function mount(el) {
  const hop = performance.getEntriesByType("navigation")[0]?.nextHopProtocol ?? "";
  const current = LABELS[hop] ?? hop;
  const known = origins(location.search);
  const select = document.createElement("select");
  select.id = "protocol";
  for (const key of ["h1", "h2", "h3"]) {
    const option = new Option(key, key);
    option.disabled = key !== current && !known[key];
    if (option.disabled) option.textContent = NOT_SERVED[key] ?? `${key}: no ?${key}= origin`;
    select.add(option);
  }
  select.value = current;
  select.addEventListener("change", () => {
    const origin = known[select.value];
    if (origin) location.assign(origin + location.pathname + location.search);
  });
  const label = document.createElement("label");
  label.append("protocol ", select);
  const note = document.createElement("span");
  note.className = "muted";
  note.textContent = ` this page: ${hop || "unknown"} from ${location.origin}`;
  el.replaceChildren(label, note);
  window.protocolSwitch = { current, origins: known };
}

const el = document.getElementById("protocol-switch");
if (el) mount(el);
