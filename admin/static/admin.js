// lastmile admin: keyboard shortcuts and small helpers (no inline scripts: the CSP forbids them).
"use strict";
document.addEventListener("keydown", (e) => {
  const box = document.getElementById("search-box");
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (e.key === "/" && box && !typing) { e.preventDefault(); box.focus(); box.select(); }
  if (e.key === "Escape" && typing) { document.activeElement.blur(); }
});
// Buttons that ask first: <button data-confirm="Block this customer?">
document.addEventListener("click", (e) => {
  const b = e.target.closest("[data-confirm]");
  if (b && !window.confirm(b.dataset.confirm)) { e.preventDefault(); e.stopPropagation(); }
}, true);
// htmx requests carry the CSRF token of the page.
document.addEventListener("htmx:configRequest", (e) => {
  const meta = document.querySelector("input[name=_csrf]");
  if (meta) { e.detail.headers["X-CSRF-Token"] = meta.value; }
});
// The search box's suggestions: arrow keys move through them, Escape closes them.
document.addEventListener("keydown", (e) => {
  const list = document.getElementById("search-suggest");
  if (!list) { return; }
  const links = Array.from(list.querySelectorAll("a"));
  const at = links.indexOf(document.activeElement);
  const box = document.getElementById("search-box");
  if (e.key === "ArrowDown" && (document.activeElement === box || at >= 0) && links.length) {
    e.preventDefault(); links[Math.min(at + 1, links.length - 1)].focus();
  } else if (e.key === "ArrowUp" && at >= 0) {
    e.preventDefault(); if (at === 0) { box.focus(); } else { links[at - 1].focus(); }
  } else if (e.key === "Escape") { list.innerHTML = ""; }
});
