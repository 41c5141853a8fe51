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
