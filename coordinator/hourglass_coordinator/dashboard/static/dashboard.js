// The runs tail: rows rendered by the server, arriving as Server-Sent Events, newest on top.
document.addEventListener("DOMContentLoaded", () => {
  const tail = document.getElementById("runs-tail");
  if (!tail) return;
  const status = document.getElementById("tail-status");
  const source = new EventSource(tail.dataset.stream);
  source.addEventListener("open", () => { status.textContent = "live"; status.className = "tail-status live"; });
  source.addEventListener("error", () => { status.textContent = "reconnecting…"; status.className = "tail-status"; });
  source.addEventListener("run", (event) => {
    tail.insertAdjacentHTML("afterbegin", event.data);
    while (tail.rows.length > 200) tail.deleteRow(-1);
  });
});
