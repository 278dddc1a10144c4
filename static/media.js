// The Media Listing Editor and the gallery: add, remove and delete through the catalogue routes.
"use strict";

function reloadSoon() {
  setTimeout(() => window.location.reload(), 600);
}

const addForm = document.getElementById("add-form");
if (addForm) {
  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    run(async () => {
      const entry = await post("/database/add", { filename: document.getElementById("add-name").value });
      say(`Added ${entry.filename}`);
      reloadSoon();
    });
  });
}

const removeForm = document.getElementById("remove-form");
if (removeForm) {
  removeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    run(async () => {
      const deleteFile = document.getElementById("remove-delete-file").checked;
      const body = await post("/database/remove", {
        filename: document.getElementById("remove-name").value,
        delete_file: deleteFile ? "true" : "false",
      });
      say(`Removed ${body.removed}${body.file_deleted ? " and deleted the file" : ""}`);
      reloadSoon();
    });
  });
}

const newDatabase = document.getElementById("new-database");
if (newDatabase) {
  newDatabase.addEventListener("click", () => run(async () => {
    if (!confirm("Start a new database? Every entry and every event is forgotten; the files stay in the media folder.")) return;
    await post("/database/new", { confirm: "yes" });
    say("New database started");
    reloadSoon();
  }));
}

for (const button of document.querySelectorAll("button.delete")) {
  button.addEventListener("click", () => run(async () => {
    const filename = button.dataset.filename;
    if (!confirm(`Delete ${filename}?`)) return;
    await post("/database/remove", { filename, delete_file: "true" });
    button.closest("figure").remove();
    say(`Deleted ${filename}`);
  }));
}
