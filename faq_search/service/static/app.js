// The search page: POST /ask with the agent's question, show the ranked answers with their confidences.
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
  const TOKEN_KEY = "faq-search-token";

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

  async function loadInfo() {
    try {
      const info = await call("/index");
      $("index-info").textContent =
        `${info.entry_count} answers · ${info.encoder.model_name} · layer ${info.settings.layer}, ` +
        `${info.settings.pooling} pooling` + (info.source ? ` · from ${info.source}` : "");
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
    button.disabled = true;
    say("Searching…");
    try {
      render(await call("/ask", body));
    } catch (error) {
      results.replaceChildren();
      if (error.status === 401) askForToken(error);
      else say(error.message, "error");
    } finally {
      button.disabled = false;
    }
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
