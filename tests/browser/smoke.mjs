// What only a browser shows: streaming, Stop, and hostile model output staying inert, plus the account flow.
// Usage: node smoke.mjs BASE_URL [SCREENSHOT_DIR]   (run by tests/it/browser.rs)
import { chromium } from "playwright-core";

const base = process.argv[2];
const shots = process.argv[3] || "";
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
const page = await context.newPage();
const dialogs = [];
const pageErrors = [];
const cspViolations = [];
page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
page.on("pageerror", (e) => pageErrors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error" && m.text().includes("Content Security Policy")) cspViolations.push(m.text()); });

function check(condition, message) {
  if (!condition) throw new Error(message);
}
const pwned = () => page.evaluate(() => window.__pwned);

try {
  // First run: set-up creates the administrator and lands in the chat.
  await page.goto(base + "/");
  check(page.url().endsWith("/setup"), "a fresh server opens the set-up page, got " + page.url());
  await page.fill("#email", "admin@example.com");
  await page.fill("#name", "Ada");
  await page.fill("#password", "correct horse battery staple");
  await page.fill("#confirm", "correct horse battery staple");
  await Promise.all([page.waitForURL("**/chat"), page.click("main button[type=submit]")]);

  // Switching versions posts a form and lands on the version's message (a new page load).
  const switchVersion = async (selector) => {
    const to = await page.getAttribute(selector, "value");
    await Promise.all([page.waitForURL((u) => u.hash === "#m-" + to), page.click(selector)]);
  };

  // Hostile output, streamed in 5-character chunks so tags are split across events.
  const payload = "<script>window.__pwned=1</script> <img src=x onerror=\"window.__pwned=2\"> " +
    "[click](javascript:window.__pwned=3) <a href=\"javascript:window.__pwned=4\">a</a> mock:echo mock:split=5";
  await page.selectOption("#model", "mock");
  await page.fill("#content", payload);
  await page.click("#send");
  await page.waitForSelector("li.msg.assistant .meta", { timeout: 15000 });
  check((await pwned()) === undefined, "a payload ran while streaming");
  check(page.url().includes("/c/"), "the address switches to the conversation");
  // The new conversation's title and actions appear without a reload.
  await page.waitForSelector("details.rename", { timeout: 10000 });
  check(await page.isVisible(`#sidebar a[href="${new URL(page.url()).pathname}"][aria-current=page]`),
    "the new conversation is in the sidebar, marked as open");
  check((await page.textContent("h1")).trim() !== "New chat", "the heading shows the conversation's title");
  check(!(await page.title()).startsWith("New chat"), "the tab title shows the conversation's title");
  check(await page.$("#regenerate") !== null, "Regenerate is offered at once");
  const jsLinks = await page.$$eval("a", (as) => as.filter((a) => a.href.startsWith("javascript:")).length);
  check(jsLinks === 0, "a javascript: link survived");
  for (const a of await page.$$("li.msg.assistant .md a")) { await a.click({ noWaitAfter: true }).catch(() => {}); }
  check((await pwned()) === undefined, "a payload ran on click");
  await page.reload();
  await page.waitForSelector("li.msg.assistant .meta");
  check((await pwned()) === undefined, "a payload ran on reload");
  check((await page.textContent("li.msg.user .body")).includes("<script>"), "the user's text is shown as text");

  // Attach a file with the file picker: a chip appears, and the message is sent with it.
  await page.setInputFiles("#attach-input", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("attached words here") });
  // The "Uploading…" chip comes first; the file's own chip carries its id.
  await page.waitForSelector("#chips .chip[data-id]");
  check((await page.textContent("#chips")).includes("notes.txt"), "the chip names the file");
  await page.fill("#content", "what is attached? mock:tokens=3");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll("li.msg.assistant .meta").length === 2);
  check((await page.inputValue("#files")) === "", "attachments are cleared after sending");
  // The sent message shows its file without a reload...
  await page.waitForFunction(() => {
    const users = document.querySelectorAll("li.msg.user");
    return users.length && users[users.length - 1].textContent.includes("notes.txt");
  }, null, { timeout: 10000 });
  // ...and after one.
  await page.reload();
  const lastQuestion = await page.$$eval("li.msg.user", (items) => items[items.length - 1].textContent);
  check(lastQuestion.includes("notes.txt"), "the sent message shows its file");

  // A file pasted into the message box is attached; one bigger than the model can take is flagged before sending.
  await page.evaluate(() => {
    const data = new DataTransfer();
    data.items.add(new File(["word ".repeat(12000)], "big.txt", { type: "text/plain" }));
    document.getElementById("content").dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  });
  await page.waitForSelector("#chips .chip[data-id]");
  check((await page.textContent("#chips")).includes("big.txt"), "a pasted file is attached");
  await page.waitForSelector("#fit-warning:not([hidden])");
  check((await page.textContent("#fit-warning")).includes("will be cut"), "the cut is announced before sending");
  await page.click("#chips .chip button");
  await page.waitForFunction(() => document.getElementById("fit-warning").hidden && !document.querySelector("#chips .chip"));

  // A normal streamed answer shows its metadata, then Stop cancels a long one.
  // Enter sends (Shift+Enter makes a new line first).
  await page.fill("#content", "count for me mock:tokens=8 mock:delay_ms=10 ");
  await page.press("#content", "Shift+Enter");
  await page.type("#content", "please");
  check((await page.inputValue("#content")).includes("\n"), "Shift+Enter starts a new line");
  await page.press("#content", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("li.msg.assistant .meta").length === 3);
  const meta = await page.$$eval("li.msg.assistant .meta", (m) => m[m.length - 1].textContent);
  check(meta.includes("Tokens in / out") && meta.includes("/ 9"), "metadata under the answer: " + meta);
  if (shots) await page.screenshot({ path: shots + "/chat.png" });

  await page.fill("#content", "a long answer mock:tokens=500 mock:delay_ms=15");
  await page.click("#send");
  await page.waitForFunction(() => {
    const all = document.querySelectorAll("li.msg.assistant");
    return all.length && all[all.length - 1].textContent.includes("tok5 ");
  });
  // Esc stops it; the page then shows what the server saved (cancelled, with its metadata) without a reload.
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => {
    const all = document.querySelectorAll("li.msg.assistant");
    const l = all[all.length - 1];
    return l && l.textContent.includes("cancelled") && l.querySelector(".meta");
  }, null, { timeout: 15000 });
  let last = "";
  for (let i = 0; i < 50; i++) {
    await page.reload();
    last = await page.textContent("li.msg.assistant:last-of-type");
    if (last.includes("cancelled")) break;
    await page.waitForTimeout(200);
  }
  check(last.includes("cancelled") && last.includes("tok5") && !last.includes("tok500"),
    "the stopped answer is saved as cancelled with its partial text");

  // Edit an earlier question: a new version streams in its place; ‹ › switches between the versions.
  const firstUser = page.locator("li.msg.user").first();
  await firstUser.locator("details.edit summary").click();
  await firstUser.locator("textarea[name=content]").fill("edited question mock:tokens=4");
  await firstUser.locator("button[type=submit]:has-text('Send as a new version')").click();
  await page.waitForFunction(() => {
    const u = document.querySelector("li.msg.user");
    return u && u.textContent.includes("edited question") && u.querySelector(".fork-pos")
      && document.querySelectorAll("li.msg.assistant .meta").length >= 1
      && !document.querySelector("li.msg.status-streaming");
  }, null, { timeout: 15000 });
  check((await page.textContent("li.msg.user .fork-pos")).replace(/\s/g, "") === "2/2", "the edit is version 2 of 2");
  check((await page.$$("li.msg.user")).length === 1, "the later turns belong to the other version");
  await switchVersion("li.msg.user .fork button[aria-label='Previous version']");
  await page.waitForFunction(() => (document.querySelector("li.msg.user .fork-pos") || {}).textContent === "1 / 2");
  check((await page.$$("li.msg.user")).length > 1, "‹ brings back the first version with its later turns");
  // Regenerate an earlier answer: a version of it, counted at its fork.
  const firstAnswer = page.locator("li.msg.assistant").first();
  await firstAnswer.locator("form.regen-form button").click();
  await page.waitForFunction(() => {
    const a = document.querySelector("li.msg.assistant");
    return a && a.querySelector(".fork-pos") && a.querySelector(".fork-pos").textContent === "2 / 2"
      && !document.querySelector("li.msg.status-streaming");
  }, null, { timeout: 15000 });
  await switchVersion("li.msg.assistant .fork button[aria-label='Previous version']");
  await page.waitForFunction(() => (document.querySelector("li.msg.assistant .fork-pos") || {}).textContent === "1 / 2");

  // A new answer is followed to the bottom of the page (not left under the composer).
  await page.fill("#content", "scroll along mock:tokens=120 mock:delay_ms=5");
  await page.press("#content", "Enter");
  await page.waitForFunction(() => {
    const l = document.querySelector("li.msg.assistant:last-of-type");
    return l && l.classList.contains("status-ok") && l.querySelector(".meta");
  }, null, { timeout: 15000 });
  const bottomGap = await page.evaluate(() =>
    document.documentElement.scrollHeight - (window.innerHeight + window.scrollY));
  check(bottomGap < 200, "the page follows the answer to the bottom: " + bottomGap + " px left below");
  // An edit being typed while an answer finishes keeps its text.
  await page.fill("#content", "while editing mock:tokens=60 mock:delay_ms=15");
  await page.press("#content", "Enter");
  const firstEdit = page.locator("li.msg.user").first();
  await firstEdit.locator("details.edit summary").click();
  await firstEdit.locator("textarea[name=content]").fill("a draft being typed");
  await page.waitForFunction(() => !document.querySelector("li.msg.status-streaming") &&
    document.querySelector("li.msg.assistant:last-of-type .meta"), null, { timeout: 15000 });
  check((await page.locator("li.msg.user").first().locator("textarea[name=content]").inputValue()) === "a draft being typed",
    "the edit draft survives the answer's end");
  await page.locator("li.msg.user").first().locator("details.edit summary").click();

  // Reloading does not stop an answer: the reloaded page shows the text so far and follows the rest live.
  await page.fill("#content", "survives a reload mock:tokens=300 mock:delay_ms=20");
  await page.click("#send");
  await page.waitForFunction(() => {
    const all = document.querySelectorAll("li.msg.assistant");
    return all.length && all[all.length - 1].textContent.includes("tok5 ");
  });
  await page.reload();
  const reloaded = await page.$eval("li.msg.assistant:last-of-type", (l) => [l.className, l.textContent]);
  check(reloaded[0].includes("status-streaming") && reloaded[1].includes("tok5 "),
    "the reloaded page shows the answer so far, still being written: " + reloaded[0]);
  await page.waitForFunction(() => {
    const l = document.querySelector("li.msg.assistant:last-of-type .body");
    return l && l.textContent.includes("tok40 ");
  }, null, { timeout: 15000 });
  // Leaving for another page and coming back: the same, then the recorded answer in place, no reload.
  const conversationUrl = page.url();
  await page.goto(base + "/history");
  await page.goto(conversationUrl);
  await page.waitForFunction(() => {
    const l = document.querySelector("li.msg.assistant:last-of-type");
    return l && l.classList.contains("status-ok") && l.querySelector(".meta") && l.textContent.includes("tok300");
  }, null, { timeout: 20000 });
  check(!(await page.isVisible("#stop")), "Stop is hidden once the followed answer ended");

  // Two tabs on one conversation, sending within a moment of each other: both turns stay on it.
  const otherTab = await context.newPage();
  await otherTab.goto(page.url());
  await page.fill("#content", "from tab A mock:tokens=20 mock:delay_ms=10");
  await otherTab.fill("#content", "from tab B mock:tokens=20 mock:delay_ms=10");
  await Promise.all([page.press("#content", "Enter"), otherTab.press("#content", "Enter")]);
  for (const tab of [page, otherTab]) {
    await tab.waitForFunction(() => !document.querySelector("li.msg.status-streaming") &&
      document.querySelector("li.msg.assistant:last-of-type .meta"), null, { timeout: 15000 });
  }
  await otherTab.close();
  // Each turn continues the conversation as the server had it when it started: the later one follows the
  // other, or (started at the same moment) is a version beside it, shown as such (‹ 2 / 2 ›).
  await page.reload();
  const tabQuestion = () => page.locator("li.msg.user").last();
  const onPage = await page.textContent("#messages");
  // Both on the page (one after the other), or else the other one a click away.
  if (!(onPage.includes("from tab A") && onPage.includes("from tab B"))) {
    check((await tabQuestion().locator(".fork-pos").textContent()).endsWith("/ 2"), "the other turn is a version, shown as such");
    const shownFirst = await tabQuestion().textContent();
    const other = (await tabQuestion().locator(".fork-pos").textContent()).startsWith("2") ? "Previous" : "Next";
    const button = tabQuestion().locator(`.fork button[aria-label='${other} version']`);
    const to = await button.getAttribute("value");
    await Promise.all([page.waitForURL((u) => u.hash === "#m-" + to), button.click()]);
    const shownThen = await tabQuestion().textContent();
    check([shownFirst, shownThen].some((t) => t.includes("from tab A")) &&
      [shownFirst, shownThen].some((t) => t.includes("from tab B")), "both tabs' turns stay on the conversation");
  }

  // Reasoning streams into a collapsed section while the answer is still coming.
  await page.fill("#content", "think first mock:reasoning=40 mock:tokens=20 mock:delay_ms=40");
  await page.click("#send");
  await page.waitForFunction(() => {
    const all = document.querySelectorAll("li.msg.assistant");
    const l = all[all.length - 1];
    return l && l.classList.contains("streaming") && l.querySelector("details.reasoning:not([open]) summary")
      && l.querySelector("details.reasoning summary").textContent.includes("so far");
  }, null, { timeout: 15000 });
  await page.waitForFunction(() => !document.querySelector("li.msg.status-streaming") &&
    document.querySelector("li.msg.assistant:last-of-type .meta"), null, { timeout: 15000 });
  check(await page.$("li.msg.assistant:last-of-type details.reasoning") !== null, "the saved answer keeps its reasoning");

  // Code blocks carry their language and a copy button; images in answers are links showing their address.
  await page.fill("#content", "```rust\nfn main() {}\n```\n\n![a cat](https://img.invalid/cat.png) mock:echo");
  await page.click("#send");
  await page.waitForSelector("li.msg.assistant .code .lang", { timeout: 15000 });
  check((await page.textContent("li.msg.assistant .code .lang")) === "rust", "the code block names its language");
  check(await page.isVisible("li.msg.assistant button.copy-code"), "the code block has a copy button");
  check(await page.isVisible("li.msg.assistant .code pre span.hl-kw"), "the code is highlighted by the server");
  check((await page.$$("li.msg.assistant .md img")).length === 0, "no image from an answer is loaded");
  check((await page.textContent("li.msg.assistant:last-of-type .md")).includes("https://img.invalid/cat.png"),
    "the image's address is shown");

  // The theme toggle: system -> light -> dark, applied at once and remembered.
  const background = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  await page.click("form.theme-toggle button");
  await page.waitForFunction(() => document.documentElement.dataset.theme === "light");
  const light = await background();
  await page.click("form.theme-toggle button");
  await page.waitForFunction(() => document.documentElement.dataset.theme === "dark");
  const dark = await background();
  check(light !== dark, "light and dark differ: " + light + " / " + dark);
  await page.reload();
  check((await page.evaluate(() => document.documentElement.dataset.theme)) === "dark", "the theme is remembered");
  if (shots) await page.screenshot({ path: shots + "/chat-dark.png" });
  await page.click("form.theme-toggle button");
  await page.waitForFunction(() => document.documentElement.dataset.theme === "system");

  // On a phone the navigation wraps into a few short rows, every link on the screen (a row that scrolled
  // sideways hid Settings and Log out).
  await page.setViewportSize({ width: 390, height: 800 });
  const navRows = await page.evaluate(() => {
    const tops = new Set([...document.querySelectorAll("header.top nav > a, header.top nav > form")]
      .map((e) => Math.round(e.getBoundingClientRect().top)));
    return tops.size;
  });
  check(navRows <= 3, "the phone navigation takes at most three rows, not " + navRows);
  check(await page.evaluate(() => document.documentElement.scrollWidth <= 390), "the chat page does not widen a phone");
  if (shots) await page.screenshot({ path: shots + "/chat-390.png" });
  // On a phone the conversation list is a drawer: closed, opened by ☰, closed by Esc.
  check(!(await page.isVisible("#sidebar")), "the phone starts without the list over the chat");
  await page.click("#side-toggle");
  check(await page.isVisible("#sidebar a[aria-current=page]"), "☰ opens the list as a drawer");
  if (shots) await page.screenshot({ path: shots + "/chat-390-drawer.png" });
  await page.keyboard.press("Escape");
  check(!(await page.isVisible("#sidebar")), "Esc closes the drawer");
  await page.setViewportSize({ width: 1280, height: 900 });

  // At 1280 px the list is beside the chat: its filter narrows it as one types; ☰ hides it, remembered.
  check(await page.isVisible("#sidebar"), "the list is beside the chat");
  const listed = () => page.$$eval("#sidebar .side-list li", (l) => l.filter((e) => !e.hidden).length);
  const before = await listed();
  await page.fill("#side-filter", "no title has this");
  check((await listed()) === 0, "the filter hides what does not match");
  await page.fill("#side-filter", "");
  check((await listed()) === before && before > 0, "clearing the filter shows them all again");
  await page.click("#side-toggle");
  check(!(await page.isVisible("#sidebar")), "☰ hides the list");
  await page.reload();
  check(!(await page.isVisible("#sidebar")), "the hidden list stays hidden after a reload");
  await page.click("#side-toggle");
  check(await page.isVisible("#sidebar"), "☰ shows it again");
  // The header's actions: Rename opens its field in place.
  await page.click("details.rename summary");
  check(await page.isVisible("#title"), "Rename shows the title field");
  await page.click("details.rename summary");

  // Settings can make Ctrl+Enter the sending key: then Enter starts a new line.
  await page.goto(base + "/settings");
  await page.check("input[name=send_with][value=mod-enter]");
  await Promise.all([page.waitForURL("**/settings?saved=chat*"), page.click("#chat-settings button[type=submit]")]);
  await page.goto(base + "/chat");
  await page.fill("#content", "sent with ctrl mock:tokens=2");
  await page.press("#content", "Enter");
  check((await page.inputValue("#content")).endsWith("\n"), "with Ctrl+Enter chosen, Enter starts a new line");
  check((await page.$$("li.msg")).length === 0, "and sends nothing");
  await page.press("#content", "Control+Enter");
  await page.waitForSelector("li.msg.assistant .meta", { timeout: 15000 });
  await page.goto(base + "/settings");
  await page.check("input[name=send_with][value=enter]");
  await Promise.all([page.waitForURL("**/settings?saved=chat*"), page.click("#chat-settings button[type=submit]")]);

  // The JSON viewer opens an array of objects as its table, columns in the document's own key order; the tree is
  // a click away.
  await page.goto(base + "/json");
  await page.fill("#json-text", '[{"zebra": 1, "apple": "x", "mango": true}, {"zebra": 2, "apple": "y", "mango": false}]');
  await Promise.all([page.waitForURL("**/json/f/**"), page.click("form[action='/json/paste'] button[type=submit]")]);
  const headers = await page.$$eval("table th", (ths) => ths.map((t) => t.textContent.trim()));
  const order = headers.filter((h) => ["zebra", "apple", "mango"].some((k) => h.startsWith(k)));
  check(order.length === 3 && order[0].startsWith("zebra") && order[1].startsWith("apple") && order[2].startsWith("mango"),
    "the table's columns keep the document's key order: " + headers.join(", "));
  await Promise.all([page.waitForURL("**view=tree**"), page.click("a:has-text('tree')")]);

  // Analytics: the charts are drawn (SVG with a title), each beside its table; at 390 px every navigation link
  // stays on the screen.
  await page.goto(base + "/analytics?period=today");
  const charts = await page.$$eval("svg.chart", (svgs) => svgs.map((s) => s.querySelector("title")?.textContent || ""));
  check(charts.length >= 7 && charts.every((t) => t.length > 0), "analytics charts have titles: " + charts.length);
  check((await page.$$("table[data-table]")).length >= 3, "analytics tables beside the charts");
  const bars = await page.$$eval("svg.chart rect title", (ts) => ts.length);
  check(bars > 0, "the calls of today are drawn");
  await page.setViewportSize({ width: 390, height: 800 });
  const offscreen = await page.$$eval("header.top nav a, header.top nav button", (els) =>
    els.filter((e) => { const r = e.getBoundingClientRect(); return r.right > window.innerWidth + 1 || r.width === 0; })
      .map((e) => e.textContent.trim()));
  check(offscreen.length === 0, "every navigation link is on a phone's screen: " + offscreen.join(", "));
  await page.setViewportSize({ width: 1280, height: 900 });

  // Screenshots of the main pages at both widths, for review.
  if (shots) {
    for (const [name, path] of [["history", "/history"], ["settings", "/settings"], ["json", "/json"],
      ["admin", "/admin"], ["explorer", "/admin/calls"], ["analytics", "/analytics?period=today"],
      ["budgets", "/admin/budgets"], ["providers", "/admin/providers"]]) {
      for (const width of [1280, 390]) {
        await page.setViewportSize({ width, height: width === 390 ? 800 : 900 });
        await page.goto(base + path);
        await page.screenshot({ path: shots + "/" + name + (width === 390 ? "-390" : "") + ".png", fullPage: true });
      }
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  }

  // History, then the account flow: log out, sign up a second person, log out, log in again.
  await page.goto(base + "/history");
  const history = await page.textContent("main");
  // Recent times read as "… ago", the exact local time on hover.
  const stamp = await page.$eval("main time[datetime]", (t) => [t.textContent, t.title]);
  check(/just now|min ago/.test(stamp[0]) && stamp[1].length > 10, "a recent time reads as relative: " + stamp);
  check(history.includes("Today") || history.includes("Yesterday"), "history groups by date");
  await Promise.all([page.waitForURL(base + "/"), page.click("nav button:has-text('Log out')")]);
  await page.goto(base + "/accounts/signup");
  await page.fill("#email", "grace@example.com");
  await page.fill("#password", "another long passphrase");
  await page.fill("#confirm", "another long passphrase");
  await Promise.all([page.waitForURL("**/chat"), page.click("main button[type=submit]")]);
  check(!(await page.content()).includes("href=\"/admin\""), "a user sees no admin link");
  await Promise.all([page.waitForURL(base + "/"), page.click("nav button:has-text('Log out')")]);
  await page.goto(base + "/accounts/login");
  await page.fill("#email", "grace@example.com");
  await page.fill("#password", "another long passphrase");
  await Promise.all([page.waitForURL("**/chat"), page.click("main button[type=submit]")]);
  check((await page.textContent("main")).includes("Ask anything"), "a new person starts with an empty chat");

  check(dialogs.length === 0, "dialogs opened: " + dialogs.join(" | "));
  check(pageErrors.length === 0, "page errors: " + pageErrors.join(" | "));
  check(cspViolations.length === 0, "CSP violations: " + cspViolations.join(" | "));
  console.log("browser checks passed");
} catch (e) {
  console.error("FAIL: " + e.message);
  if (shots) await page.screenshot({ path: shots + "/failure.png", fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
