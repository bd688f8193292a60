// The console's first script. It loads the rest (app.js and the modules it imports);
// when a piece does not arrive (a dropped connection, or the browser aborting requests
// because a network interface changed under it, as Docker's do when containers start)
// the page says so and loads itself again, instead of staying on "Loading…" for good.
// It imports nothing (dom.js neither): it must run when nothing else arrived.

const KEY = "hyac-console-load-failures";
const AUTOMATIC = 3;  // reloads on their own before the page asks the user

function failures() {
  try { return Number(sessionStorage.getItem(KEY)) || 0; } catch { return 0; }
}

function remember(count) {
  try {
    if (count) sessionStorage.setItem(KEY, String(count));
    else sessionStorage.removeItem(KEY);
  } catch { /* storage refused: the page still says what happened */ }
}

function notice(text, withButton) {
  const main = document.getElementById("main");
  const box = document.createElement("div");
  box.className = "card";
  const line = document.createElement("p");
  line.className = "error";
  line.setAttribute("role", "alert");
  line.textContent = text;
  box.append(line);
  if (withButton) {
    const again = document.createElement("button");
    again.type = "button";
    again.textContent = "Reload";
    again.addEventListener("click", () => { remember(0); location.reload(); });
    box.append(again);
  }
  main.replaceChildren(box);
}

try {
  await import("./app.js");
  remember(0);
} catch (error) {
  const count = failures() + 1;
  remember(count);
  const why = error && error.message ? error.message : String(error);
  if (count <= AUTOMATIC) {
    const seconds = 2 ** (count - 1);
    notice(`The console did not load completely (${why}). Trying again in ${seconds} s…`, false);
    setTimeout(() => location.reload(), seconds * 1000);
  } else {
    notice(`The console could not load (${why}). Check that the agent is reachable, then reload.`, true);
  }
}
