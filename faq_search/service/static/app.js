// The search page: POST /indexes/{name}/ask with the agent's question, show the ranked answers with their
// confidences. An index picker lists the indexes the token may read (GET /indexes); filter chips come from the
// chosen index's filterable fields and become the request's `filter` ("plan in ('pro') and country in ('DE')").
// With a question log (`serve --log`), a "Gaps" view shows GET /indexes/{name}/gaps: the topics customers asked that
// got no confident answer, each with its volume, representative questions and the closest entry.
// Plain DOM, no build step. Text from the server is only ever set with textContent.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("ask-form");
  const question = $("question");
  const button = $("ask-button");
  const status = $("status");
  const results = $("results");
  const token = $("token");
  const picker = $("index-picker");
  const chips = $("chips");
  const TOKEN_KEY = "faq-search-token";
  const MAX_CHIPS = 24; // a field with more values than this gets no chips
  let indexes = [];
  const chosen = new Map(); // field name -> Set of chosen values

  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  token.addEventListener("change", () => {
    sessionStorage.setItem(TOKEN_KEY, token.value.trim());
    loadInfo();
  });

  function say(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }

  async function call(path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const secret = token.value.trim();
    if (secret) headers.Authorization = "Bearer " + secret;
    const response = await fetch(path, {
      method: body === undefined ? "GET" : "POST",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error((data && data.error) || `the server answered HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function askForToken(error) {
    $("token-box").open = true;
    token.focus();
    say(`${error.message}. Enter the access token above and search again.`, "error");
  }

  function current() {
    return indexes.find((item) => item.name === picker.value) || indexes[0];
  }

  function showIndex() {
    const info = current();
    chosen.clear();
    chips.replaceChildren();
    if (!info) {
      $("index-info").textContent = "This token may not read any index.";
      return;
    }
    $("index-info").textContent =
      `${info.entries} answers · ${info.model} · layer ${info.layer}, ${info.pooling} pooling` +
      (info.source ? ` · from ${info.source}` : "");
    for (const field of info.filters) {
      if (!field.values || field.values.length === 0 || field.values.length > MAX_CHIPS) continue;
      const group = document.createElement("div");
      group.className = "chip-group";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = field.name;
      group.append(name);
      for (const value of field.values) {
        const chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip";
        chip.textContent = value;
        chip.dataset.field = field.name;
        chip.dataset.value = value;
        chip.setAttribute("aria-pressed", "false");
        chip.addEventListener("click", () => toggle(chip, field.name, value));
        group.append(chip);
      }
      chips.append(group);
    }
  }

  function toggle(chip, field, value) {
    const values = chosen.get(field) || new Set();
    if (values.has(value)) values.delete(value);
    else values.add(value);
    if (values.size) chosen.set(field, values);
    else chosen.delete(field);
    chip.setAttribute("aria-pressed", String(values.has(value)));
  }

  function quoted(text) {
    return "'" + text.replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
  }

  function filterText() {
    const parts = [];
    for (const [field, values] of chosen) {
      parts.push(`${quoted(field)} in (${[...values].map(quoted).join(", ")})`);
    }
    return parts.join(" and ");
  }

  async function loadInfo() {
    try {
      const data = await call("/indexes");
      const previous = picker.value;
      indexes = data.indexes;
      picker.replaceChildren(
        ...indexes.map((item) => {
          const option = document.createElement("option");
          option.value = item.name;
          option.textContent = `${item.name} (${item.entries})`;
          return option;
        }),
      );
      if (indexes.some((item) => item.name === previous)) picker.value = previous;
      $("index-box").hidden = indexes.length < 2;
      showIndex();
      probeGaps();
    } catch (error) {
      $("index-info").textContent =
        error.status === 401 ? "This server needs an access token (see below)." : `Index unavailable: ${error.message}`;
      if (error.status === 401) $("token-box").open = true;
    }
  }

  function render(data) {
    results.replaceChildren();
    if (!data.answered) {
      const threshold = data.min_score === null ? "" : ` (no answer reached confidence ${data.min_score.toFixed(2)})`;
      say(`No confident answer${threshold}. Hand the customer over to a colleague.`, "handover");
      return;
    }
    say(`${data.matches.length} answer${data.matches.length === 1 ? "" : "s"}, best first.`);
    const template = $("match-template");
    for (const match of data.matches) {
      const item = template.content.firstElementChild.cloneNode(true);
      item.dataset.id = match.id;
      item.querySelector(".rank").textContent = `${match.rank}.`;
      item.querySelector("meter").value = Math.max(0, match.score);
      item.querySelector(".score").textContent = match.score.toFixed(3);
      item.querySelector(".id").textContent = match.id;
      item.querySelector(".field").textContent = `matched the ${match.field}`;
      const q = item.querySelector(".question");
      if (match.question) q.textContent = match.question;
      else q.remove();
      item.querySelector(".answer").textContent = match.answer;
      item.querySelector(".copy").addEventListener("click", async (event) => {
        try {
          await navigator.clipboard.writeText(match.answer);
          event.target.textContent = "Copied";
        } catch (_) {
          event.target.textContent = "Copy failed: select the text";
        }
      });
      results.append(item);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (!text) {
      say("Type the customer's question first.", "error");
      question.focus();
      return;
    }
    const body = { question: text, k: Number($("k").value) };
    const minScore = $("min-score").value.trim();
    if (minScore !== "") body.min_score = Number(minScore);
    const filter = filterText();
    if (filter) body.filter = filter;
    const info = current();
    button.disabled = true;
    say("Searching…");
    try {
      const path = info ? `/indexes/${encodeURIComponent(info.name)}/ask` : "/ask";
      render(await call(path, body));
    } catch (error) {
      results.replaceChildren();
      if (error.status === 401) askForToken(error);
      else say(error.message, "error");
    } finally {
      button.disabled = false;
    }
  });

  // -- the gaps view (only when the server keeps a question log) -------------------------------------------

  function gapsPath(query) {
    const info = current();
    const base = info ? `/indexes/${encodeURIComponent(info.name)}/gaps` : "/gaps";
    return `${base}?${new URLSearchParams(query)}`;
  }

  let hasGaps = null; // whether the server publishes the gaps routes (only with --log)

  async function probeGaps() {
    if (hasGaps === null) {
      try {
        const schema = await call("/openapi.json"); // public, and lists /indexes/{name}/gaps only with a log
        hasGaps = Boolean(schema.paths && schema.paths["/indexes/{name}/gaps"]);
      } catch (_) {
        hasGaps = false;
      }
    }
    $("views").hidden = !hasGaps;
    if (!hasGaps) showView("search");
  }

  function showView(name) {
    for (const view of ["search", "gaps"]) {
      $(`${view}-view`).hidden = view !== name;
      $(`tab-${view}`).setAttribute("aria-selected", String(view === name));
    }
  }

  function renderGaps(data) {
    const list = $("gaps");
    list.replaceChildren();
    const gapStatus = $("gaps-status");
    gapStatus.className = "";
    gapStatus.textContent =
      `${data.gap_askings} of ${data.logged} logged questions were gaps (${data.gap_questions} distinct)` +
      (data.clusters.length ? `; ${data.clusters.length} topics, most needed first.` : ": nothing to show.");
    const template = $("topic-template");
    for (const topic of data.clusters) {
      const item = template.content.firstElementChild.cloneNode(true);
      item.querySelector(".rank").textContent = `${topic.rank}.`;
      item.querySelector(".volume").textContent =
        `${topic.volume} asked (${topic.distinct} distinct, ${topic.unhelpful} unhelpful)`;
      item.querySelector(".novelty").textContent = `novelty ${topic.novelty.toFixed(2)}`;
      const questions = item.querySelector(".representatives");
      for (const text of topic.representatives) {
        const line = document.createElement("li");
        line.textContent = text;
        questions.append(line);
      }
      const closest = topic.closest;
      item.querySelector(".closest").textContent = closest.id
        ? `Closest entry ${closest.id} (confidence ${closest.score.toFixed(2)}): ${closest.question || ""}`
        : "No close entry.";
      list.append(item);
    }
  }

  $("gaps-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = { top: $("gaps-top").value };
    const since = $("gaps-since").value;
    if (since) query.since = since;
    const gapsButton = $("gaps-button");
    gapsButton.disabled = true;
    $("gaps-status").textContent = "Grouping the unanswered questions… (the first time loads a model)";
    try {
      renderGaps(await call(gapsPath(query)));
    } catch (error) {
      $("gaps").replaceChildren();
      $("gaps-status").textContent = error.message;
      $("gaps-status").className = "error";
      if (error.status === 401) askForToken(error);
    } finally {
      gapsButton.disabled = false;
    }
  });

  $("tab-search").addEventListener("click", () => showView("search"));
  $("tab-gaps").addEventListener("click", () => showView("gaps"));

  picker.addEventListener("change", () => {
    showIndex();
    probeGaps();
    $("gaps").replaceChildren();
    $("gaps-status").textContent = "";
  });

  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  loadInfo();
  question.focus();
})();
