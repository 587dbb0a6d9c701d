// Server page: buttons that interrupt a running machine ask before they submit, and the
// section tabs (WAI-ARIA tabs pattern). Without this script every section shows one after the
// other and the tabs are plain links to them.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

(function () {
  "use strict";
  const list = document.querySelector("[data-tabs]");
  if (!list) return;
  const tabs = Array.from(list.querySelectorAll("[role=tab]"));
  const panelOf = (tab) => document.getElementById(tab.getAttribute("aria-controls"));

  function select(tab, { focus = false, remember = false } = {}) {
    tabs.forEach((each) => {
      const chosen = each === tab;
      each.setAttribute("aria-selected", chosen ? "true" : "false");
      // Roving tabindex: Tab reaches the chosen tab only, the arrows move between them.
      each.tabIndex = chosen ? 0 : -1;
      const panel = panelOf(each);
      if (panel) panel.hidden = !chosen;
    });
    if (focus) tab.focus();
    // replaceState keeps the tab across a reload without scrolling to the anchor.
    if (remember) history.replaceState(history.state, "", tab.getAttribute("href"));
  }

  // The tab whose panel holds the element the #hash names (#addresses lies in "Interfaces").
  function fromHash() {
    const id = decodeURIComponent(window.location.hash.slice(1));
    const target = id ? document.getElementById(id) : null;
    const panel = target ? target.closest("[role=tabpanel]") : null;
    return { tab: tabs.find((tab) => panelOf(tab) === panel) || tabs[0], target };
  }

  function showHash() {
    const { tab, target } = fromHash();
    select(tab);
    // An anchor inside a panel (not the panel's own section) is scrolled to once visible.
    if (target && target.id !== tab.getAttribute("href").slice(1)) target.scrollIntoView();
  }

  list.addEventListener("click", (event) => {
    const tab = event.target.closest("[role=tab]");
    if (!tab) return;
    event.preventDefault();
    select(tab, { focus: true, remember: true });
  });

  list.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = {
      ArrowRight: (index + 1) % tabs.length,
      ArrowLeft: (index - 1 + tabs.length) % tabs.length,
      Home: 0,
      End: tabs.length - 1,
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(tabs[moves[event.key]], { focus: true, remember: true });
  });

  window.addEventListener("hashchange", showHash);
  showHash();
})();
