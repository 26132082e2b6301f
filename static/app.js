// llmeta: progressive enhancement only; every page works without this file.
"use strict";

document.addEventListener("submit", (event) => {
  // Forms that destroy something carry data-confirm="question".
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Copy buttons copy the raw text of an answer (hidden without JavaScript).
// Sizes as the server writes them (views.rs human_size).
function humanSize(n) {
  return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : n >= 1024 ? (n / 1024).toFixed(1) + " KB" : n + " B";
}

function enableCopy(root) {
  root.querySelectorAll("button.copy").forEach((button) => {
    button.hidden = false;
    if (button.dataset.ready) return;
    button.dataset.ready = "1";
    button.addEventListener("click", async () => {
      const source = button.parentElement.querySelector("textarea.copy-source");
      try {
        await navigator.clipboard.writeText(source ? source.value : "");
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Copy failed";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  });
}
enableCopy(document);

// The theme toggle applies the next theme in place (the server remembers it); without this, a page load does.
document.querySelectorAll("form.theme-toggle").forEach((form) => {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new URLSearchParams(new FormData(form));
    const theme = data.get("theme");
    try {
      const res = await fetch(form.action, {
        method: "POST", body: data, redirect: "manual",
        headers: { "X-CSRF-Token": data.get("csrf_token") || "" },
      });
      if (res.type !== "opaqueredirect" && !res.ok) return;
    } catch (_) {
      return;
    }
    const order = ["system", "light", "dark"];
    document.documentElement.dataset.theme = theme;
    form.querySelector("input[name=theme]").value = order[(order.indexOf(theme) + 1) % order.length];
    const button = form.querySelector("button");
    button.textContent = "Theme: " + theme;
    button.title = "Colour theme: " + theme + ". Click for the next one (system, light, dark).";
  });
});

// Times: recent ones as "3 min ago", older ones in the browser's own time zone; the exact time on hover.
function localTimes(root) {
  const now = Date.now();
  root.querySelectorAll("time[datetime]").forEach((el) => {
    const at = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) return;
    const ago = (now - at.getTime()) / 1000;
    el.title = at.toLocaleString(undefined, { dateStyle: "full", timeStyle: "long" });
    // A server clock a little ahead of this one still reads as now.
    if (ago > -60 && ago < 45) el.textContent = "just now";
    else if (ago > 0 && ago < 3600) el.textContent = Math.floor(ago / 60) + " min ago";
    else if (ago > 0 && ago < 86400) el.textContent = Math.floor(ago / 3600) + " h ago";
    else el.textContent = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  });
}
localTimes(document);

// Copy buttons of code blocks in answers (rendered by the server, hidden until this script shows them).
function enableCodeCopy(root) {
  root.querySelectorAll("button.copy-code").forEach((button) => {
    if (button.dataset.ready) return;
    button.dataset.ready = "1";
    button.hidden = false;
    button.addEventListener("click", async () => {
      // The block right after this header: what the reader sees of it (innerText, not hidden text).
      const pre = button.closest(".code-head").nextElementSibling;
      try {
        await navigator.clipboard.writeText(pre && pre.tagName === "PRE" ? pre.innerText : "");
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Copy failed";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  });
}
enableCodeCopy(document);

// The conversation list beside a chat: ☰ hides or shows it (remembered in this browser), on a phone it opens as
// a drawer; its filter narrows the list as one types (Enter searches every title, in the history). Handlers are
// on the document: the page replaces the list and the header after an answer.
const layout = document.getElementById("chat-layout");
let showSideControls = () => {};
if (layout) {
  const phone = window.matchMedia("(max-width: 800px)");
  const toggle = () => document.getElementById("side-toggle");
  const showControls = () => {
    const t = toggle();
    if (t) {
      t.hidden = false;
      t.setAttribute("aria-expanded", String(phone.matches
        ? layout.classList.contains("side-open") : !layout.classList.contains("side-collapsed")));
    }
    const close = document.getElementById("side-close");
    if (close) close.hidden = !phone.matches;
  };
  const closeDrawer = () => { layout.classList.remove("side-open"); showControls(); };
  try { if (localStorage.getItem("llmeta.sidebar") === "hidden") layout.classList.add("side-collapsed"); } catch (_) { /* private mode */ }
  showControls();
  phone.addEventListener("change", showControls);
  document.addEventListener("click", (e) => {
    if (e.target.closest("#side-toggle")) {
      if (phone.matches) layout.classList.toggle("side-open");
      else {
        const hidden = layout.classList.toggle("side-collapsed");
        try { localStorage.setItem("llmeta.sidebar", hidden ? "hidden" : "shown"); } catch (_) { /* private mode */ }
      }
      showControls();
    } else if (e.target.closest("#side-close")) {
      closeDrawer();
    } else if (layout.classList.contains("side-open") && !e.target.closest("#sidebar")) {
      closeDrawer();
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && layout.classList.contains("side-open")) { e.preventDefault(); closeDrawer(); }
  });
  document.addEventListener("input", (e) => {
    if (e.target.id !== "side-filter") return;
    const q = e.target.value.trim().toLowerCase();
    document.querySelectorAll("#sidebar .side-list ul").forEach((ul) => {
      let shown = 0;
      ul.querySelectorAll("li").forEach((li) => {
        const hit = !q || li.textContent.toLowerCase().includes(q);
        li.hidden = !hit;
        if (hit) shown += 1;
      });
      ul.hidden = shown === 0;
      const heading = ul.previousElementSibling;
      if (heading && heading.tagName === "H2") heading.hidden = shown === 0;
    });
  });
  // A conversation opens at its latest message (unless the address points at one).
  if (!window.location.hash && document.querySelector("#messages li")) {
    window.scrollTo(0, document.documentElement.scrollHeight);
  }
  showSideControls = showControls;
}

// Rename and Edit open in place: their field takes the focus, and Esc closes them.
document.addEventListener("toggle", (e) => {
  const d = e.target;
  if (!(d instanceof HTMLDetailsElement) || !d.open || !d.matches("details.rename, details.edit")) return;
  const field = d.querySelector("input[type=text], textarea");
  if (field) field.focus();
}, true);
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || e.isComposing) return;
  const open = document.activeElement && document.activeElement.closest("details.rename[open], details.edit[open]");
  if (open) {
    e.preventDefault();
    open.open = false;
    open.querySelector("summary").focus();
  }
});

// Chat: send with fetch and show the answer as it streams (Server-Sent Events over the POST response).
const chatForm = document.getElementById("chat-form");
if (chatForm) {
  let list = document.getElementById("messages");
  const content = document.getElementById("content");
  const send = document.getElementById("send");
  const stop = document.getElementById("stop");
  const errorBox = document.getElementById("stream-error");

  // Enter sends, Shift+Enter starts a new line (or, as chosen in Settings, Ctrl+Enter sends); not while an input method is composing a character (Safari
  // reports its confirming Enter as keyCode 229), and not on touch screens, whose keyboards have no Shift.
  const touch = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
  if (touch) content.setAttribute("enterkeyhint", "enter");
  // Settings can make Ctrl+Enter (⌘+Enter) the sending key, and Enter a new line.
  const modSends = content.dataset.send === "mod-enter";
  content.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229 || touch) return;
    if (modSends && !(e.ctrlKey || e.metaKey)) return;
    e.preventDefault();
    if (!following && !send.disabled && content.value.trim()) chatForm.requestSubmit(send);
  });

  // After an answer ends (finished, failed or stopped) the page takes the server's view of the conversation:
  // its title and actions (a new chat has them only now), the sent message's attachment chips, a stopped
  // answer's saved text and metadata. While the server is still recording a stopped answer, it asks again
  // (a few times, then leaves the page as it is).
  const syncPage = async (url, answerId) => {
    for (let attempt = 0; attempt < 60; attempt++) {
      let doc;
      try {
        const res = await fetch(url, { headers: { "Accept": "text/html" } });
        if (!res.ok) return;
        doc = new DOMParser().parseFromString(await res.text(), "text/html");
      } catch (_) {
        return;
      }
      const fresh = doc.getElementById("messages");
      if (!fresh) return;
      // Only this answer is waited for (another tab's answer may be running too).
      const mine = answerId ? fresh.querySelector("#" + CSS.escape(answerId) + ".status-streaming") : null;
      if (mine && attempt < 59) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        continue;
      }
      const adopt = (selector) => {
        const mine = document.querySelector(selector);
        const theirs = doc.querySelector(selector);
        if (mine && theirs) mine.replaceWith(document.importNode(theirs, true));
      };
      const filter = (document.getElementById("side-filter") || {}).value || "";
      // Edits being typed survive the new list: open, with their text.
      const drafts = new Map();
      document.querySelectorAll("#messages details.edit[open] textarea").forEach((t) => drafts.set(t.id, t.value));
      adopt(".chat-head");
      adopt("#sidebar");
      adopt("#messages");
      list = document.getElementById("messages");
      drafts.forEach((value, id) => {
        const t = document.getElementById(id);
        if (t) { t.value = value; t.closest("details").open = true; }
      });
      // The system prompt the next message uses, as the server now says.
      const shownPrompt = document.getElementById("system-prompt-shown");
      const freshPrompt = doc.getElementById("system-prompt-shown");
      if (shownPrompt && freshPrompt) shownPrompt.replaceWith(document.importNode(freshPrompt, true));
      else if (shownPrompt) shownPrompt.remove();
      else if (freshPrompt) list.before(document.importNode(freshPrompt, true));
      localTimes(list);
      const side = document.getElementById("side-filter");
      if (side && filter) { side.value = filter; side.dispatchEvent(new Event("input", { bubbles: true })); }
      showSideControls();
      const regenerate = doc.getElementById("regenerate");
      if (regenerate && !document.getElementById("regenerate")) stop.after(document.importNode(regenerate, true));
      document.title = doc.title;
      enableCopy(list);
      enableCodeCopy(list);
      return;
    }
  };

  const item = (cls, who) => {
    const li = document.createElement("li");
    li.className = "msg " + cls;
    const w = document.createElement("div");
    w.className = "who";
    w.textContent = who;
    const body = document.createElement("div");
    body.className = "body plain";
    li.append(w, body);
    list.append(li);
    return li;
  };

  const showError = (text) => {
    errorBox.textContent = text;
    errorBox.hidden = false;
  };

  // Attachments: upload at once (button or drop), show a chip, and send the ids with the message.
  const filesInput = document.getElementById("files");
  const chips = document.getElementById("chips");
  const attachForm = document.getElementById("attach-form");
  const attachInput = document.getElementById("attach-input");
  const token = () => new FormData(chatForm).get("csrf_token") || "";
  const ids = () => filesInput.value.split(",").filter(Boolean);
  const setIds = (list) => { filesInput.value = list.join(","); };
  // Before sending: attachments the selected model cannot take whole are said to be cut (the server cuts them,
  // and the sent message says exactly how much went).
  const fitWarning = document.getElementById("fit-warning");
  const modelSelect = document.getElementById("model");
  const checkFit = () => {
    if (!fitWarning || !modelSelect) return;
    const option = modelSelect.selectedOptions[0];
    const maxTokens = Number((document.getElementById("max_tokens") || {}).value);
    // As the server reckons it: the window less the answer's reservation (max_tokens, else the default).
    const budget = option
      ? Number(option.dataset.window) - (maxTokens > 0 ? maxTokens : Number(option.dataset.reserve))
      : NaN;
    let total = 0;
    chips.querySelectorAll("li.chip[data-tokens]").forEach((c) => { total += Number(c.dataset.tokens) || 0; });
    if (total > 0 && Number.isFinite(budget) && total > budget) {
      fitWarning.textContent = "These files hold about " + total + " tokens; " + option.textContent +
        " can take about " + Math.max(budget, 0) + " with your message, so they will be cut to fit.";
      fitWarning.hidden = false;
    } else {
      fitWarning.hidden = true;
    }
  };
  if (modelSelect) modelSelect.addEventListener("change", checkFit);
  const maxTokensInput = document.getElementById("max_tokens");
  if (maxTokensInput) maxTokensInput.addEventListener("input", checkFit);
  const addChip = (f) => {
    const li = document.createElement("li");
    li.className = "chip";
    li.dataset.id = f.id;
    li.dataset.tokens = f.tokens;
    const label = document.createElement("span");
    const size = humanSize(f.size);
    const cutAt = f.text_cut_bytes == null ? "" : " · only its first " + humanSize(f.text_cut_bytes) + " of text is used";
    label.textContent = f.name + " · " + size + " · ≈" + f.tokens + " tokens" + cutAt;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link";
    remove.textContent = "×";
    remove.setAttribute("aria-label", "Remove " + f.name);
    remove.addEventListener("click", async () => {
      await fetch("/files/" + f.id + "/delete", {
        method: "POST", headers: { "X-CSRF-Token": token(), "Accept": "application/json" },
      });
      li.remove();
      setIds(ids().filter((i) => i !== f.id));
      checkFit();
    });
    li.append(label, " ", remove);
    chips.append(li);
  };
  // While files upload, Send waits: a message sent now would go without them.
  let uploading = 0;
  const upload = async (fileList) => {
    if (!fileList || !fileList.length) return;
    uploading += 1;
    send.disabled = true;
    const body = new FormData();
    for (const f of fileList) body.append("file", f, f.name);
    errorBox.hidden = true;
    const pending = document.createElement("li");
    pending.className = "chip";
    pending.textContent = "Uploading " + fileList.length + " file(s)…";
    chips.append(pending);
    try {
      // The ids already attached count towards the per-message cap.
      const res = await fetch("/files?files=" + encodeURIComponent(ids().join(",")), {
        method: "POST", body, headers: { "X-CSRF-Token": token(), "Accept": "application/json" },
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) {
        showError((data.error && data.error.message) || ("The upload failed (HTTP " + res.status + ")."));
        return;
      }
      for (const f of data.files) { addChip(f); setIds(ids().concat([f.id])); }
      checkFit();
    } catch (_) {
      showError("The upload failed: the connection was lost.");
    } finally {
      pending.remove();
      uploading -= 1;
      if (uploading === 0 && !following) send.disabled = false;
    }
  };
  if (attachForm && attachInput) {
    // The paperclip in the composer opens the file picker; the form below it is for pages without script.
    // (Kept in the page, only out of sight: some browsers open no picker for an input that is not displayed.)
    attachForm.classList.add("sr-only");
    document.getElementById("attach-btn").hidden = false;
    attachInput.addEventListener("change", async () => { await upload(attachInput.files); attachInput.value = ""; });
    attachForm.addEventListener("submit", (e) => e.preventDefault());
  }
  // Files pasted into the message box are attached like dropped ones.
  content.addEventListener("paste", (e) => {
    const files = e.clipboardData && e.clipboardData.files;
    // Text copied from a spreadsheet or a document also carries a picture of itself: paste the text.
    const hasText = e.clipboardData && [...e.clipboardData.types].includes("text/plain");
    if (files && files.length && !hasText) {
      e.preventDefault();
      upload(files);
    }
  });
  checkFit();
  document.querySelectorAll("#chips .chip button[form]").forEach((b) => {
    const id = b.closest(".chip").dataset.id;
    b.type = "button";
    b.removeAttribute("form");
    b.addEventListener("click", async () => {
      await fetch("/files/" + id + "/delete", { method: "POST", headers: { "X-CSRF-Token": token(), "Accept": "application/json" } });
      b.closest(".chip").remove();
      setIds(ids().filter((i) => i !== id));
    });
  });
  chatForm.addEventListener("dragover", (e) => { e.preventDefault(); chatForm.classList.add("dragging"); });
  chatForm.addEventListener("dragleave", () => chatForm.classList.remove("dragging"));
  chatForm.addEventListener("drop", (e) => {
    e.preventDefault();
    chatForm.classList.remove("dragging");
    upload(e.dataTransfer.files);
  });

  // An answer on the page as it streams: `snapshot` replaces its text, `delta` adds to it, `done` puts the
  // recorded block in its place, `error` says it could not be saved. The answer is written on the server
  // whatever this page does (reloading or leaving does not stop it); Stop and Esc ask the server to stop it.
  let following = null; // { answer, stopped } while this page follows an answer

  const streamView = (answer) => {
    let body = answer.querySelector(".body");
    let reasoning = answer.querySelector("details.reasoning");
    const setReasoning = (text, append) => {
      if (!text && !reasoning) return;
      // Reasoning streams into a collapsed section above the answer, which says how much has come.
      if (!reasoning) {
        reasoning = document.createElement("details");
        reasoning.className = "reasoning";
        reasoning.append(document.createElement("summary"));
        body.before(reasoning);
      }
      let plain = reasoning.querySelector(".plain");
      if (!plain) { plain = document.createElement("div"); plain.className = "plain"; reasoning.append(plain); }
      plain.textContent = append ? plain.textContent + text : text;
      reasoning.querySelector("summary").textContent =
        "Reasoning… (" + plain.textContent.length + " characters so far)";
    };
    const plainBody = () => {
      if (!body.classList.contains("plain")) { body.className = "body plain"; body.textContent = ""; }
    };
    return {
      // Plain text while streaming; the sanitised HTML arrives with `done`.
      replace(t, r) { plainBody(); body.textContent = t || ""; setReasoning(r || "", false); },
      append(t, r) { plainBody(); if (r) setReasoning(r, true); if (t) body.textContent += t; },
    };
  };

  // Reads the events of `res` into `answer`; resolves to "done", "error" or "cut" (the connection ended first).
  const follow = async (res, answer, onStart) => {
    const view = streamView(answer);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let end = "cut";
    const handle = (raw) => {
      let name = "message";
      let payload = "";
      for (const line of raw.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) payload += line.slice(5).trim();
      }
      const d = payload ? JSON.parse(payload) : {};
      const stick = atBottom();
      if (name === "start") onStart(d);
      else if (name === "snapshot") view.replace(d.t, d.r);
      else if (name === "delta") view.append(d.t, d.r);
      else if (name === "done") {
        const tpl = document.createElement("template");
        tpl.innerHTML = d.html;
        const block = tpl.content.firstElementChild;
        if (block) { answer.replaceWith(block); enableCopy(block); enableCodeCopy(block); localTimes(block); }
        // Nothing left to stop (Send waits until the page has the saved conversation).
        stop.hidden = true;
        end = "done";
      } else if (name === "error") {
        // The answer was not saved: the streamed text stays on the page, with the reason.
        answer.classList.remove("streaming", "status-streaming");
        answer.classList.add("status-error");
        answer.removeAttribute("aria-busy");
        showError(d.message || "The answer could not be saved.");
        end = "error";
      }
      if (stick) toBottom();
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        handle(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
    return end;
  };

  const conversationPath = () => {
    const m = window.location.pathname.match(/^\/c\/[^/]+$/);
    return m ? m[0] : null;
  };
  const answerIdOf = (answer) => (answer.id || "").replace(/^m-/, "");

  // Follows a running answer again (after a reload, or when the connection dropped): the text so far, then
  // the rest. When it is no longer running here, the page takes the saved conversation instead.
  const reattach = async (answer) => {
    const path = conversationPath();
    const id = answerIdOf(answer);
    if (!path || !id) return;
    begin(answer);
    try {
      const res = await fetch(path + "/live?answer=" + encodeURIComponent(id), {
        headers: { "Accept": "text/event-stream" },
      });
      const type = res.headers.get("content-type") || "";
      const end = res.status === 200 && type.startsWith("text/event-stream") ? await follow(res, answer, () => {}) : "gone";
      if (end === "done" || end === "gone") await syncPage(path, answer.id);
      else if (end === "cut") showError("The connection was lost. Reload to see the answer.");
    } catch (_) {
      showError("The connection was lost. Reload to see the answer.");
    } finally {
      finish(answer);
    }
  };

  // While an answer is written, nothing else can be asked from this page (Send, Regenerate, Edit wait).
  const waiting = (on) => {
    document.querySelectorAll("#regenerate, form.regen-form button, form.edit-form button[type=submit]")
      .forEach((b) => { b.disabled = on; });
  };
  const begin = (answer) => {
    following = { answer, stopped: false };
    // Screen readers hear the answer once it is complete, not every piece and count as it streams.
    answer.setAttribute("aria-busy", "true");
    send.disabled = true;
    stop.hidden = false;
    waiting(true);
  };
  // Ends following `answer` (none: whatever is followed). Then, if the page shows another answer still being
  // written (another tab's, brought in with the saved conversation), it follows that one.
  const finish = (answer) => {
    if (following && answer && following.answer !== answer) return;
    following = null;
    if (uploading === 0) send.disabled = false;
    stop.hidden = true;
    waiting(false);
    setTimeout(() => {
      const running = !following && list.querySelector("li.assistant.status-streaming");
      // Once per answer: one that cannot be followed from here is not asked for again and again.
      if (running && running.id && !followedOnce.has(running.id)) {
        followedOnce.add(running.id);
        reattach(running);
      }
    }, 0);
  };
  const followedOnce = new Set();
  // The page follows the newest text while the reader is at the bottom; one who scrolled up is left there.
  const atBottom = () =>
    window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 160;
  const toBottom = () => window.scrollTo(0, document.documentElement.scrollHeight);

  // Stop asks the server to stop the answer; the stream then ends with the recorded (cancelled) answer.
  const stopAnswer = async () => {
    if (!following || following.stopped) return;
    const path = conversationPath();
    const id = answerIdOf(following.answer);
    // Not started yet: stopped as soon as the start event brings its id.
    if (!path || !id) { following.wantStop = true; return; }
    following.stopped = true;
    stop.disabled = true;
    try {
      const body = new URLSearchParams({ answer: id, csrf_token: token() });
      const res = await fetch(path + "/stop", { method: "POST", body, headers: { "X-CSRF-Token": token() } });
      // 404: it has just ended (the stream brings the end), or another server instance writes it.
      if (!res.ok && following) {
        following.stopped = false;
        showError(res.status === 404
          ? "This answer cannot be stopped from here: it has ended, or another server is writing it."
          : "The answer could not be stopped (HTTP " + res.status + ").");
      }
    } catch (_) {
      if (following) following.stopped = false;
      showError("The answer could not be stopped: the connection was lost.");
    } finally {
      stop.disabled = false;
    }
  };
  stop.addEventListener("click", stopAnswer);
  // Esc stops a running answer (not the Esc that cancels an input method's composition).
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && following && !e.isComposing && !e.defaultPrevented) stopAnswer();
  });

  // Sends a turn and follows its answer. `from`: the message the new version replaces (it and everything after
  // it leave the page; the old version stays on the server, a click away); `userText`: the question to show;
  // `accepted`: called once the server took the turn.
  const runTurn = async (action, data, from, userText, accepted) => {
    errorBox.hidden = true;
    const note = document.getElementById("empty-note");
    if (note) note.remove();
    // What the new version replaces goes, and comes back if the server refuses it.
    const removed = [];
    if (from) {
      for (let el = from; el; el = el.nextElementSibling) removed.push(el);
      removed.forEach((el) => el.remove());
    }
    const restore = () => removed.forEach((el) => list.append(el));
    let userItem = null;
    if (userText !== null) {
      userItem = item("user", "You");
      userItem.querySelector(".body").textContent = userText;
    }
    const answer = item("assistant streaming status-streaming", "…");
    begin(answer);
    toBottom();
    // The connection dropped: an answer that started goes on on the server, so follow it again; one that
    // never started leaves the page as it was, with the reason.
    const lost = async () => {
      finish(answer);
      if (answer.id && answer.isConnected) {
        await reattach(answer);
        return;
      }
      answer.remove();
      if (userItem) userItem.remove();
      restore();
      showError("The connection was lost before the server took the message. Reload to see what was saved.");
    };
    try {
      const res = await fetch(action, {
        method: "POST",
        body: data,
        headers: { "Accept": "text/event-stream, application/json", "X-CSRF-Token": token() },
      });
      const type = res.headers.get("content-type") || "";
      if (!res.ok || !type.startsWith("text/event-stream")) {
        let message = "The message could not be sent (HTTP " + res.status + ").";
        try { message = (await res.json()).error.message; } catch (_) { /* keep the generic text */ }
        answer.remove();
        if (userItem) userItem.remove();
        restore();
        showError(message);
        return;
      }
      if (accepted) accepted();
      const end = await follow(res, answer, (d) => {
        if (window.location.pathname !== d.url) {
          window.history.replaceState(null, "", d.url);
          chatForm.setAttribute("action", d.url);
        }
        answer.id = "m-" + d.answer_id;
        // A new chat has its title at once (its actions come with the saved answer).
        const heading = document.querySelector(".chat-title");
        if (d.title && heading && heading.textContent === "New chat") {
          heading.textContent = d.title;
          heading.title = d.title;
          document.title = d.title + " · llmeta";
        }
        // Stop pressed before the answer had an id.
        if (following && following.wantStop) stopAnswer();
      });
      // Only a saved answer: an unsaved one stays on the page as streamed, with the reason.
      if (end === "done") await syncPage(window.location.pathname, answer.id);
      else if (end === "cut") await lost();
    } catch (_) {
      // The request itself failed (offline, or the page is going away): the answer, if it started, goes on.
      await lost();
    } finally {
      finish(answer);
    }
  };

  chatForm.addEventListener("submit", async (event) => {
    if (following) { event.preventDefault(); return; }
    const submitter = event.submitter;
    const regenerate = submitter && submitter.id === "regenerate";
    const action = (submitter && submitter.getAttribute("formaction")) || chatForm.getAttribute("action");
    if (!regenerate && !content.value.trim()) return;
    event.preventDefault();
    const data = new URLSearchParams(new FormData(chatForm));
    if (regenerate) {
      await runTurn(action, data, list.querySelector("li.assistant:last-of-type"), null);
      return;
    }
    // The typed text and chips leave the composer once the server took the message: never lost before.
    await runTurn(action, data, null, content.value, () => {
      content.value = "";
      chips.textContent = "";
      setIds([]);
      checkFit();
    });
  });

  // Edit (an earlier question, sent again as a new version) and Regenerate (any answer) use the composer's
  // model and parameters, and stream like a new message.
  list.parentElement.addEventListener("submit", (event) => {
    const form = event.target;
    const edit = form.classList.contains("edit-form");
    if (!edit && !form.classList.contains("regen-form")) return;
    event.preventDefault();
    if (following) return;
    const data = new URLSearchParams(new FormData(chatForm));
    data.delete("content");
    data.delete("files");
    for (const [k, v] of new FormData(form)) data.set(k, v);
    const message = form.closest("li.msg");
    runTurn(form.action, data, message, edit ? String(data.get("content")) : null);
  });
  // Parameters: empty fields say what they mean with the selected model (its default, else the provider's).
  const params = ["temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "presence_penalty",
    "frequency_penalty", "system_prompt"];
  const showPlaceholders = () => {
    const option = modelSelect && modelSelect.selectedOptions[0];
    if (!option || !option.dataset.placeholders) return;
    let ph = {};
    try { ph = JSON.parse(option.dataset.placeholders); } catch (_) { return; }
    for (const name of params) {
      const field = chatForm.elements[name];
      if (field && ph[name] !== undefined) field.placeholder = ph[name];
    }
  };
  if (modelSelect) modelSelect.addEventListener("change", showPlaceholders);
  // The closed panel says which parameters are set, as the server does (chat.rs params_summary).
  const summaryOf = () => {
    const names = { temperature: "temperature", top_p: "top P", top_k: "top K", max_tokens: "max tokens", seed: "seed",
      presence_penalty: "presence penalty", frequency_penalty: "frequency penalty" };
    const set = [];
    for (const [name, label] of Object.entries(names)) {
      const v = (chatForm.elements[name] || {}).value || "";
      if (v.trim()) set.push(label + " " + v.trim());
    }
    if (((chatForm.elements.stop || {}).value || "").trim()) set.push("stop sequences");
    if (((chatForm.elements.system_prompt || {}).value || "").trim()) set.push("system prompt");
    const out = document.getElementById("params-summary");
    if (out) out.textContent = ": " + (set.length ? set.join(" · ") : "the model's defaults");
  };
  chatForm.addEventListener("input", (e) => { if (params.includes(e.target.name)) summaryOf(); });

  // Presets: picking one fills the model and parameters at once (the Use button is for pages without script);
  // Save preset stores the current ones under a name without leaving the page.
  const presetBox = document.getElementById("presets");
  const applyPreset = (option) => {
    if (!option || !option.value) return;
    let values = {};
    try { values = JSON.parse(option.dataset.params || "{}"); } catch (_) { return; }
    if (modelSelect && [...modelSelect.options].some((o) => o.value === option.dataset.model)) {
      modelSelect.value = option.dataset.model;
      modelSelect.dispatchEvent(new Event("change"));
    }
    for (const name of params) {
      const field = chatForm.elements[name];
      if (field) field.value = values[name] || "";
    }
    summaryOf();
    checkFit();
  };
  const presetPick = () => document.getElementById("preset-pick");
  if (presetBox) {
    const use = document.getElementById("preset-use");
    if (use) use.hidden = true;
    presetBox.addEventListener("change", (e) => { if (e.target.id === "preset-pick") applyPreset(e.target.selectedOptions[0]); });
    document.getElementById("preset-save").addEventListener("click", async (e) => {
      e.preventDefault();
      const data = new URLSearchParams(new FormData(chatForm));
      data.delete("content");
      const name = String(data.get("preset_name") || "").trim();
      try {
        const res = await fetch("/presets", {
          method: "POST", body: data, headers: { "Accept": "application/json", "X-CSRF-Token": token() },
        });
        const body = await res.json().catch(() => ({}));
        if (!res.ok) { showError((body.error && body.error.message) || "The preset could not be saved."); return; }
        let pick = presetPick();
        if (!pick) {
          const label = document.createElement("label");
          label.htmlFor = "preset-pick";
          label.className = "inline-label";
          label.textContent = "Preset";
          pick = document.createElement("select");
          pick.id = "preset-pick";
          pick.append(new Option("Choose…", ""));
          presetBox.prepend(label, pick);
        }
        const values = {};
        for (const p of params) values[p] = String(data.get(p) || "");
        let option = [...pick.options].find((o) => o.value === body.id);
        if (!option) { option = new Option(name, body.id); pick.append(option); }
        option.dataset.model = String(data.get("model") || "");
        option.dataset.params = JSON.stringify(values);
        pick.value = body.id;
        errorBox.hidden = true;
        document.getElementById("preset_name").value = "";
      } catch (_) {
        showError("The preset could not be saved: the connection was lost.");
      }
    });
  }

  // A page opened (or reloaded) while one of its answers is being written follows it.
  const running = list.querySelector("li.assistant.status-streaming");
  if (running) { followedOnce.add(running.id); reattach(running); }
}
