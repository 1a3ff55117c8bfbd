// Sort a table by the clicked column: numbers by their data-value, text as text.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.querySelectorAll("th");
  headers.forEach(function (header, column) {
    header.addEventListener("click", function () {
      var ascending = !header.classList.contains("sorted-asc");
      var numeric = header.dataset.type === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var order;
        if (numeric) {
          var u = parseFloat(x.dataset.value), v = parseFloat(y.dataset.value);
          order = (isNaN(u) ? Infinity : u) - (isNaN(v) ? Infinity : v);
        } else {
          order = x.textContent.trim().localeCompare(y.textContent.trim());
        }
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      headers.forEach(function (other) { other.classList.remove("sorted-asc", "sorted-desc"); });
      header.classList.add(ascending ? "sorted-asc" : "sorted-desc");
    });
  });
});
