// pingcalc page: calls the JSON API with the pasted bearer token.
//
// Security rules this file keeps (the page runs under a strict CSP, see api/web.py):
// - server data reaches the DOM only through textContent / createElement, never innerHTML,
//   so an expression such as <img src=x onerror=...> is shown as text and never parsed;
// - the token lives in memory and sessionStorage only: never in a URL, a cookie or a log,
//   and never in the result history (which redacts it even where a user typed it);
// - requests are same-origin, without cookies (credentials: "omit") and without caching.
"use strict";

(() => {
  const TOKEN_KEY = "pingcalc.token";
  const HISTORY_KEY = "pingcalc.history";
  // Results kept in the tab's history: enough to look back, small enough to read at a glance.
  const HISTORY_MAX = 20;
  // A ping of the largest count with its per-reply timeout ends well within this; a hung
  // connection must not leave the form disabled forever.
  const REQUEST_TIMEOUT_MS = 30000;
  const NDJSON = "application/x-ndjson";

  const $ = (id) => document.getElementById(id);
  const tokenInput = $("token");

  // --- token -----------------------------------------------------------------------------

  function readStoredToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return ""; // storage disabled: the token then lives in the input (memory) only
    }
  }

  function storeToken(value) {
    try {
      if (value) {
        window.sessionStorage.setItem(TOKEN_KEY, value);
      } else {
        window.sessionStorage.removeItem(TOKEN_KEY);
      }
    } catch {
      // storage disabled: nothing to do, the input still holds the token
    }
  }

  function currentToken() {
    return tokenInput.value.trim();
  }

  tokenInput.value = readStoredToken();
  tokenInput.addEventListener("input", () => storeToken(currentToken()));
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    storeToken(currentToken());
  });
  $("token-forget").addEventListener("click", () => {
    tokenInput.value = "";
    storeToken("");
    tokenInput.focus();
  });

  // --- output ----------------------------------------------------------------------------

  function block(text, className) {
    const pre = document.createElement("pre");
    if (className) {
      pre.className = className;
    }
    pre.textContent = text;
    return pre;
  }

  function show(region, state, ...blocks) {
    region.className = "result " + state;
    region.setAttribute("aria-busy", state === "pending" ? "true" : "false");
    region.replaceChildren(...blocks);
  }

  function asText(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function formatMs(value) {
    const number = Number(value);
    return Number.isFinite(number) ? String(Math.round(number * 1000) / 1000) : "?";
  }

  // The caret under the failing column (1-based, in code points like the server counts them).
  // Tabs are copied so the caret stays aligned under a tab-indented expression.
  function caretLine(expression, position) {
    const chars = Array.from(expression);
    const column = Math.max(1, Math.min(Number(position) || 1, chars.length + 1));
    let pad = "";
    for (let i = 0; i < column - 1; i += 1) {
      pad += chars[i] === "\t" ? "\t" : " ";
    }
    return pad + "^";
  }

  function problemText(response) {
    const { status, data } = response;
    const title = asText(data && data.title) || "Error";
    const detail = asText(data && data.detail) || "the server gave no detail";
    let text = `Error ${status} ${title}: ${detail}`;
    if (data && Number.isInteger(data.retry_after)) {
      text += ` (retry after ${data.retry_after} s)`;
    }
    return text;
  }

  // --- requests --------------------------------------------------------------------------

  // A calculation's result is kept as the server wrote it: as a JS number, 7.0 would print
  // as 7 and 2 ** 100 would be rounded to 1.2676506002282294e+30. The reviver's source text
  // (JSON.parse source access) gives the exact digits; older browsers fall back to the number.
  function parseJson(text) {
    return JSON.parse(text, (key, value, context) =>
      key === "result" && typeof value === "number" && context && typeof context.source === "string"
        ? context.source
        : value,
    );
  }

  function isProblem(data) {
    return Boolean(data) && typeof data.type === "string" && Number.isInteger(data.status);
  }

  // POST `payload` as JSON. With `onEvent`, ask for live lines (NDJSON): each event object
  // is handed to `onEvent` as it arrives and the last line is the answer. Resolves to
  // { ok, status, data } or, when no answer came, { ok: false, status: 0, reason }.
  async function callApi(path, payload, onEvent) {
    const headers = {
      "Content-Type": "application/json",
      Accept: `${onEvent ? NDJSON : "application/json"}, application/problem+json`,
    };
    const token = currentToken();
    if (token) {
      headers.Authorization = `Bearer ${token}`;
    }
    const controller = new AbortController();
    const timer = window.setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch(path, {
        method: "POST",
        headers,
        body: JSON.stringify(payload),
        credentials: "omit",
        cache: "no-store",
        mode: "same-origin",
        redirect: "error",
        referrerPolicy: "no-referrer",
        signal: controller.signal,
      });
      const type = response.headers.get("Content-Type") || "";
      if (onEvent && response.ok && type.startsWith(NDJSON) && response.body) {
        return await readLines(response.body, onEvent);
      }
      let data = null;
      try {
        data = parseJson(await response.text());
      } catch {
        data = null; // not JSON (a proxy page?): reported below without its body
      }
      return { ok: response.ok, status: response.status, data };
    } catch (error) {
      const reason =
        error && error.name === "AbortError"
          ? "the server did not answer in time"
          : error instanceof TypeError && token && /[^\x21-\x7e]/.test(token)
            ? "the token contains characters that cannot be sent in a header"
            : "the server could not be reached";
      return { ok: false, status: 0, data: null, reason };
    } finally {
      window.clearTimeout(timer);
    }
  }

  // One JSON object per line: events (they have an `event` field) go to `onEvent` as they
  // arrive; the last other line is the answer, a result or (status set) a problem.
  async function readLines(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    let answer = null;
    const take = (line) => {
      if (!line.trim()) {
        return;
      }
      let item = null;
      try {
        item = parseJson(line);
      } catch {
        return; // a torn or foreign line: the answer line decides the outcome
      }
      if (item && typeof item.event === "string") {
        onEvent(item);
      } else {
        answer = item;
      }
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      pending += decoder.decode(value, { stream: true });
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        take(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
    }
    take(pending + decoder.decode());
    if (answer === null) {
      return { ok: false, status: 0, data: null, reason: "the answer ended before its result" };
    }
    if (isProblem(answer)) {
      return { ok: false, status: answer.status, data: answer };
    }
    return { ok: true, status: 200, data: answer };
  }

  function failure(response) {
    if (response.status === 0) {
      return `Error: ${response.reason}`;
    }
    return problemText(response);
  }

  function bindForm(form, region, pendingText, run) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      show(region, "pending", block(pendingText(), "pending"));
      try {
        await run();
      } finally {
        button.disabled = false;
      }
    });
  }

  // --- history ---------------------------------------------------------------------------

  const historyList = $("history");

  // The token must never be kept with the results, even where a user typed it into a field
  // whose text comes back in a result or an error message.
  function redact(text) {
    const token = currentToken();
    const stored = readStoredToken();
    let safe = String(text);
    for (const secret of [token, stored]) {
      if (secret) {
        safe = safe.split(secret).join("[token]");
      }
    }
    return safe;
  }

  function readHistory() {
    try {
      const entries = JSON.parse(window.sessionStorage.getItem(HISTORY_KEY) || "[]");
      return Array.isArray(entries)
        ? entries.filter((e) => e && typeof e.text === "string" && typeof e.kind === "string")
        : [];
    } catch {
      return []; // storage disabled or an entry we did not write: start afresh
    }
  }

  function renderHistory(entries) {
    historyList.replaceChildren(
      ...entries.map((entry) => {
        const item = document.createElement("li");
        item.className = entry.ok ? "ok" : "error";
        const when = document.createElement("time");
        when.textContent = asText(entry.at);
        const text = document.createElement("span");
        text.textContent = `${entry.kind}: ${entry.text}`;
        item.append(when, " ", text);
        return item;
      }),
    );
  }

  function remember(kind, text, ok) {
    const entry = {
      kind,
      text: redact(text),
      ok: Boolean(ok),
      at: new Date().toTimeString().slice(0, 8), // hh:mm:ss, local time
    };
    const entries = [entry, ...readHistory()].slice(0, HISTORY_MAX);
    try {
      window.sessionStorage.setItem(HISTORY_KEY, JSON.stringify(entries));
    } catch {
      // storage disabled: the list below still shows this tab's results
    }
    renderHistory(entries);
  }

  renderHistory(readHistory());
  $("history-clear").addEventListener("click", () => {
    try {
      window.sessionStorage.removeItem(HISTORY_KEY);
    } catch {
      // storage disabled: nothing was kept
    }
    renderHistory([]);
  });

  // --- calculate -------------------------------------------------------------------------

  const calcForm = $("calc-form");
  const calcResult = $("calc-result");
  const expressionInput = $("expression");

  bindForm(calcForm, calcResult, () => "Calculating…", async () => {
    const expression = expressionInput.value;
    const response = await callApi("/api/v1/calculate", { expression });
    if (response.ok && response.data) {
      const shown = asText(response.data.expression) || expression;
      const text = `${shown} = ${asText(response.data.result)}`;
      show(calcResult, "ok", block(text));
      remember("calculate", text, true);
      return;
    }
    const blocks = [];
    const position = response.data && response.data.position;
    let message = failure(response);
    if (response.status === 422 && Number.isInteger(position)) {
      if (!message.includes(`column ${position}`)) {
        message += ` (column ${position})`;
      }
      blocks.push(block(message));
      blocks.push(block(`${expression}\n${caretLine(expression, position)}`, "source"));
    } else {
      blocks.push(block(message));
    }
    show(calcResult, "error", ...blocks);
    remember("calculate", `${expression}: ${message}`, false);
  });

  // --- calculator help: the server's own syntax reference, as data -------------------------

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = asText(text);
    row.append(td);
  }

  function table(caption, headings, rows) {
    const element = document.createElement("table");
    const title = document.createElement("caption");
    title.textContent = caption;
    const head = document.createElement("tr");
    for (const heading of headings) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = heading;
      head.append(th);
    }
    const thead = document.createElement("thead");
    thead.append(head);
    const tbody = document.createElement("tbody");
    for (const values of rows) {
      const row = document.createElement("tr");
      for (const value of values) {
        cell(row, value);
      }
      tbody.append(row);
    }
    element.append(title, thead, tbody);
    return element;
  }

  function list(items) {
    return Array.isArray(items) ? items.filter((item) => item && typeof item === "object") : [];
  }

  function example(entry) {
    return `${asText(entry.example)} = ${asText(entry.result)}`;
  }

  function renderReference(ref) {
    const numbers = document.createElement("p");
    numbers.textContent = `Numbers: ${asText(ref.numbers)}.`;
    const hints = list(ref.not_operators).map((item) => {
      const hint = document.createElement("p");
      hint.textContent = `${asText(item.symbol)} is ${asText(item.hint)}`;
      return hint;
    });
    // One table a row: caption, column headings, the reference's list, a row's cells.
    const tables = [
      ["Operators, lowest precedence first", ["operator", "meaning", "example"], ref.operators,
        (op) => [op.symbol, op.meaning, example(op)]],
      ["Functions", ["function", "arguments", "meaning", "example"], ref.functions,
        (fn) => [fn.name, fn.arguments, fn.description, example(fn)]],
      ["Constants", ["constant", "meaning", "example"], ref.constants,
        (c) => [c.name, c.description, example(c)]],
      ["Limits of this server", ["limit", "value", "what it limits"], ref.bounds,
        (b) => [b.name, Number(b.value).toLocaleString("en"), b.meaning]],
    ];
    $("calc-help-body").replaceChildren(
      numbers,
      ...hints,
      ...tables.map(([caption, headings, items, cells]) =>
        table(caption, headings, list(items).map(cells))),
    );
  }

  async function loadReference() {
    try {
      const response = await fetch("/static/calc-reference.json", {
        credentials: "omit",
        mode: "same-origin",
        redirect: "error",
        referrerPolicy: "no-referrer",
      });
      if (response.ok) {
        renderReference(parseJson(await response.text()));
      }
    } catch {
      // the help stays at its "not loaded" text; the calculator itself still works
    }
  }

  loadReference();

  // --- ping ------------------------------------------------------------------------------

  const pingForm = $("ping-form");
  const pingResult = $("ping-result");
  const targetInput = $("target");
  const familyInput = $("family");
  const countInput = $("count");

  function familyName(family) {
    return family === 4 || family === 6 ? `IPv${family}` : asText(family);
  }

  function eventLine(event) {
    const seq = asText(event && event.seq);
    return event && event.event === "reply"
      ? `seq=${seq} rtt=${formatMs(event.rtt_ms)} ms`
      : `seq=${seq} timeout`;
  }

  function pingSummary(data) {
    let summary =
      `${asText(data.sent)} sent, ${asText(data.received)} received, ` +
      `${asText(data.loss_percent)}% loss`;
    const rtt = data.rtt_ms;
    if (rtt && typeof rtt === "object") {
      summary +=
        "; rtt min/avg/max/stddev = " +
        [rtt.min, rtt.avg, rtt.max, rtt.stddev].map(formatMs).join("/") +
        " ms";
    }
    return summary;
  }

  function pingHeading(data) {
    const family = familyName(data.family);
    return data.name
      ? `PING ${asText(data.name)} (${asText(data.target)}, ${family})`
      : `PING ${asText(data.target)} (${family})`;
  }

  function pingReport(data) {
    const lines = [pingHeading(data)];
    const replies = Array.isArray(data.replies) ? data.replies : [];
    for (const reply of replies) {
      lines.push(`seq=${asText(reply && reply.seq)} rtt=${formatMs(reply && reply.rtt_ms)} ms`);
    }
    lines.push(pingSummary(data));
    lines.push(`backend: ${asText(data.backend)}`);
    return lines.join("\n");
  }

  bindForm(
    pingForm,
    pingResult,
    () => `PING ${targetInput.value.trim()}`,
    async () => {
      const target = targetInput.value.trim();
      const payload = { target, count: Number(countInput.value) };
      if (familyInput.value) {
        payload.family = Number(familyInput.value);
      }
      // Each reply is appended to the pending block as it arrives (and announced alone).
      const live = pingResult.querySelector("pre");
      const response = await callApi("/api/v1/ping", payload, (event) => {
        live.append(`\n${eventLine(event)}`);
      });
      if (response.ok && response.data) {
        show(pingResult, "ok", block(pingReport(response.data)));
        const where = response.data.name
          ? `${asText(response.data.name)} (${asText(response.data.target)})`
          : asText(response.data.target);
        remember("ping", `${where}: ${pingSummary(response.data)}`, true);
      } else {
        const message = failure(response);
        show(pingResult, "error", block(message));
        remember("ping", `${target}: ${message}`, false);
      }
    },
  );
})();
