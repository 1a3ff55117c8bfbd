// Draw the chosen image's insertion and deletion curves (target probability against the share
// of pixels revealed or hidden) as inline SVG, from the data of its <option>.
(function () {
  var NS = "http://www.w3.org/2000/svg";
  var LEFT = 48, RIGHT = 500, TOP = 16, BOTTOM = 240;
  function add(svg, tag, attributes, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (text !== undefined) { node.textContent = text; }
    svg.appendChild(node);
  }
  function x(share) { return LEFT + share * (RIGHT - LEFT); }
  function y(probability) { return BOTTOM - probability * (BOTTOM - TOP); }
  function points(values) {
    return values.map(function (value, i) {
      return x(i / (values.length - 1)).toFixed(1) + "," + y(value).toFixed(1);
    }).join(" ");
  }
  function draw(svg, option) {
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    [0, 0.25, 0.5, 0.75, 1].forEach(function (tick) {
      add(svg, "line", {"class": "grid", x1: LEFT, x2: RIGHT, y1: y(tick), y2: y(tick)});
      add(svg, "text", {x: LEFT - 6, y: y(tick) + 4, "text-anchor": "end"}, String(tick));
      add(svg, "text", {x: x(tick), y: BOTTOM + 16, "text-anchor": "middle"}, String(tick));
    });
    add(svg, "polyline", {"class": "axis", points: LEFT + "," + TOP + " " + LEFT + "," + BOTTOM + " " + RIGHT + "," + BOTTOM});
    add(svg, "text", {x: (LEFT + RIGHT) / 2, y: BOTTOM + 34, "text-anchor": "middle"},
      "share of the pixels revealed (insertion) or hidden (deletion)");
    add(svg, "text", {x: 12, y: (TOP + BOTTOM) / 2, "text-anchor": "middle",
      transform: "rotate(-90 12 " + (TOP + BOTTOM) / 2 + ")"}, "target probability");
    ["insertion", "deletion"].forEach(function (kind, row) {
      add(svg, "polyline", {"class": kind, points: points(JSON.parse(option.dataset[kind]))});
      add(svg, "line", {"class": kind, x1: RIGHT - 170, x2: RIGHT - 150, y1: TOP + 10 + row * 16, y2: TOP + 10 + row * 16});
      add(svg, "text", {"class": "label", x: RIGHT - 144, y: TOP + 14 + row * 16},
        kind + " AUC " + option.dataset[kind + "Auc"]);
    });
  }
  document.querySelectorAll(".curves").forEach(function (view) {
    var pick = view.querySelector("select.curve-pick"), svg = view.querySelector("svg.curve-plot");
    pick.addEventListener("change", function () { draw(svg, pick.options[pick.selectedIndex]); });
    draw(svg, pick.options[pick.selectedIndex]);
    // An AUC in the audit's table of images shows that image's curves (the link scrolls up).
    view.closest("section").querySelectorAll("a.show-curves").forEach(function (link) {
      link.addEventListener("click", function () {
        pick.value = link.dataset.image;
        draw(svg, pick.options[pick.selectedIndex]);
      });
    });
  });
})();
