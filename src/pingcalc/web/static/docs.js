// pingcalc API reference: renders /openapi.json from the same origin, with a "Try it" form.
//
// Same rules as the web page (api/web.py): server data reaches the DOM only through
// textContent / createElement (never innerHTML), the token stays in memory, requests are
// same-origin without cookies. Nothing here is loaded from anywhere else.
"use strict";

(() => {
  const REQUEST_TIMEOUT_MS = 30000;
  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function resolve(spec, schema) {
    // Follows local "#/components/schemas/X" references only.
    let current = schema || {};
    for (let hops = 0; current.$ref && hops < 8; hops += 1) {
      const name = current.$ref.split("/").pop();
      current = (spec.components && spec.components.schemas && spec.components.schemas[name]) || {};
    }
    return current;
  }

  function typeOf(spec, schema) {
    const s = resolve(spec, schema);
    if (s.anyOf) return s.anyOf.map((x) => typeOf(spec, x)).join(" | ");
    if (s.type === "array") return `${typeOf(spec, s.items)}[]`;
    return s.type || s.title || "object";
  }

  function constraints(schema) {
    const parts = [];
    for (const key of ["minimum", "maximum", "minLength", "maxLength", "default"]) {
      if (schema[key] !== undefined) parts.push(`${key} ${JSON.stringify(schema[key])}`);
    }
    return parts.join(", ");
  }

  function schemaTable(spec, schema) {
    const s = resolve(spec, schema);
    const props = s.properties || {};
    const required = new Set(s.required || []);
    const table = el("table");
    const head = table.insertRow();
    for (const title of ["field", "type", "description"]) head.appendChild(el("th", title));
    for (const [name, raw] of Object.entries(props)) {
      const prop = resolve(spec, raw);
      const row = table.insertRow();
      row.insertCell().appendChild(el("code", required.has(name) ? `${name} *` : name));
      row.insertCell().textContent = typeOf(spec, raw);
      const extra = constraints(prop);
      row.insertCell().textContent = [prop.description, extra].filter(Boolean).join(" — ");
    }
    return table;
  }

  // A body documented as `anyOf` several objects (one expression, or a batch) is shown as
  // one table per form; the example is the first form.
  function forms(spec, schema) {
    const s = resolve(spec, schema);
    return s.anyOf ? s.anyOf.map((x) => resolve(spec, x)) : [s];
  }

  function exampleBody(spec, schema) {
    const s = forms(spec, schema)[0];
    const body = {};
    for (const [name, raw] of Object.entries(s.properties || {})) {
      const prop = resolve(spec, raw);
      if (prop.examples && prop.examples.length) body[name] = prop.examples[0];
      else if ((s.required || []).includes(name)) body[name] = prop.default ?? "";
    }
    return JSON.stringify(body, null, 2);
  }

  async function send(method, path, bodyText, output) {
    const headers = { Accept: "application/json" };
    const token = $("token").value.trim();
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (bodyText !== null) {
      headers["Content-Type"] = "application/json";
      init.body = bodyText;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    init.signal = controller.signal;
    output.replaceChildren(el("p", "…"));
    try {
      const response = await fetch(path, init);
      const text = await response.text();
      const status = el("p", `${response.status} ${response.statusText}`,
        response.ok ? "status-ok" : "status-error");
      status.dataset.status = String(response.status);
      output.replaceChildren(status, el("pre", text));
    } catch (error) {
      output.replaceChildren(el("p", `request failed: ${error.message}`, "status-error"));
    } finally {
      clearTimeout(timer);
    }
  }

  function operation(spec, path, method, op) {
    const box = el("details", null, "operation");
    box.dataset.operation = `${method.toUpperCase()} ${path}`;
    const summary = el("summary");
    summary.append(el("span", method, "method"), el("span", path, "path"));
    const needsToken = (op.security && op.security.length) || "401" in (op.responses || {}) ||
      path.startsWith("/api/") || path === "/metrics";
    const scope = needsToken ? "bearer token" : "no token";
    summary.appendChild(el("span", `${op.summary || ""} (${scope})`, "scope"));
    box.appendChild(summary);
    if (op.description) box.appendChild(el("p", op.description));

    const bodySchema = op.requestBody && op.requestBody.content &&
      op.requestBody.content["application/json"] && op.requestBody.content["application/json"].schema;
    if (bodySchema) {
      box.appendChild(el("h4", "Request body (application/json)"));
      const alternatives = forms(spec, bodySchema);
      for (const form of alternatives) {
        if (alternatives.length > 1) {
          box.appendChild(el("p", `one of: ${form.title || "object"}${form.description ? ` — ${form.description}` : ""}`));
        }
        box.appendChild(schemaTable(spec, form));
      }
    }
    box.appendChild(el("h4", "Responses"));
    const responses = el("table");
    for (const [code, response] of Object.entries(op.responses || {})) {
      const row = responses.insertRow();
      row.insertCell().appendChild(el("code", code));
      row.insertCell().textContent = response.description || "";
    }
    box.appendChild(responses);

    const form = el("form");
    form.className = "try";
    let textarea = null;
    if (bodySchema) {
      textarea = el("textarea");
      textarea.value = exampleBody(spec, bodySchema);
      textarea.setAttribute("aria-label", `body for ${method.toUpperCase()} ${path}`);
      form.appendChild(textarea);
    }
    const button = el("button", "Try it");
    button.type = "submit";
    form.appendChild(button);
    const output = el("div", null, "result");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(method.toUpperCase(), path, textarea ? textarea.value : null, output);
    });
    box.append(form, output);
    return box;
  }

  async function main() {
    const target = $("operations");
    try {
      const response = await fetch("/openapi.json", { credentials: "omit", cache: "no-store" });
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      const spec = await response.json();
      $("title").textContent = `${spec.info.title} ${spec.info.version} API`;
      if (spec.info.summary) $("summary").prepend(el("span", `${spec.info.summary} `));
      const items = [];
      for (const [path, methods] of Object.entries(spec.paths || {})) {
        for (const [method, op] of Object.entries(methods)) items.push(operation(spec, path, method, op));
      }
      target.replaceChildren(...items);
      document.body.dataset.rendered = String(items.length);
    } catch (error) {
      target.replaceChildren(el("p", `cannot load /openapi.json: ${error.message}`, "status-error"));
    }
  }

  $("auth").addEventListener("submit", (event) => event.preventDefault());
  main();
})();
