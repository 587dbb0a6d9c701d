// Server list: the header checkbox selects every row of the page for a bulk action.
document.addEventListener("change", (event) => {
  const all = event.target.closest("[data-select-all]");
  if (!all) return;
  for (const box of all.form.querySelectorAll('input[name="ids"]')) box.checked = all.checked;
});
