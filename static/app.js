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
