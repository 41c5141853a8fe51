// Paying online in the portal (admin/portal/pay.py): the card is typed into Stripe.js, never
// into lastmile. A new card is saved through a SetupIntent (confirmCardSetup, 3-D Secure
// included), then the form goes to lastmile naming that setup (setup_ref), which charges the
// card. On the result page a payment waiting for 3-D Secure is confirmed (confirmCardPayment)
// and the page asks lastmile again how it ended. A saved card pays without this script.
"use strict";
(function () {
  const errorBox = document.getElementById("pay-error");
  function fail(message) {
    if (!errorBox) { return; }
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  document.querySelectorAll("form[data-confirm]").forEach((f) => {
    f.addEventListener("submit", (e) => {
      if (!window.confirm(f.dataset.confirm)) { e.preventDefault(); }
    });
  });

  const confirmBox = document.getElementById("confirm-box");
  const form = document.getElementById("pay-form") || document.getElementById("card-form");
  if (typeof Stripe === "undefined") {
    if (confirmBox || form) { fail("The card form could not be loaded: reload the page, or pay with a saved card."); }
    return;
  }

  if (confirmBox) {  // the result page of a payment waiting for 3-D Secure
    const stripe = Stripe(confirmBox.dataset.stripeKey);
    const button = document.getElementById("confirm-button");
    const confirm = async () => {
      button.disabled = true;
      const done = await stripe.confirmCardPayment(confirmBox.dataset.clientSecret);
      if (done.error && !done.paymentIntent) {
        fail(done.error.message || "Your bank did not confirm the payment.");
        button.disabled = false;
        return;
      }
      window.location.reload();  // lastmile asks Stripe how it ended
    };
    button.addEventListener("click", confirm);
    confirm();
    return;
  }
  if (!form) { return; }

  const stripe = Stripe(form.dataset.stripeKey);
  const elements = stripe.elements();
  const mountAt = form.querySelector("[data-card-element]");
  const newBox = form.querySelector("[data-new-card-box]");
  const button = form.querySelector("button[type=submit]");
  let card = null;
  let busy = false;

  function newChosen() {
    const checked = form.querySelector("input[name=card]:checked");
    const only = form.querySelector("input[name=card]");
    return checked ? checked.value === "new" : Boolean(only && only.value === "new");
  }
  function show() {
    const wanted = newChosen();
    if (newBox) { newBox.hidden = !wanted; }
    if (wanted && !card) {
      card = elements.create("card", { hidePostalCode: true });
      card.mount(mountAt);
    }
  }
  form.querySelectorAll("input[name=card]").forEach((r) => r.addEventListener("change", show));
  show();

  async function saveCard() {
    const response = await fetch(form.dataset.setupUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": form.dataset.csrf, "Accept": "application/json" },
    });
    const setup = await response.json().catch(() => ({ error: "The card could not be saved: try again." }));
    if (!response.ok || setup.error) { throw new Error(setup.error || "The card could not be saved: try again."); }
    const done = await stripe.confirmCardSetup(setup.client_secret, { payment_method: { card: card } });
    if (done.error) { throw new Error(done.error.message || "Your card was not accepted."); }
    return setup.setup_ref;
  }

  form.addEventListener("submit", async (e) => {
    if (busy) { e.preventDefault(); return; }  // a double click: the first one goes on
    busy = true;
    if (!newChosen()) { button.disabled = true; return; }  // a saved card: the form goes as it is
    e.preventDefault();
    button.disabled = true;
    if (errorBox) { errorBox.hidden = true; }
    try {
      form.querySelector("input[name=setup_ref]").value = await saveCard();
      form.submit();
    } catch (err) {
      fail(err && err.message ? err.message : String(err));
      busy = false;
      button.disabled = false;
    }
  });
})();
