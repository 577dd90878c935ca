/* The explorer of stored runs (notebooks/26_explorer; smallbatch.figures.explorer).
 *
 * Plotly's sliders act one at a time: each step can only apply a change computed in
 * advance. The explorer's chooser and its two sliders (batch size m, learning rate
 * eta_tilde) therefore change nothing themselves (method "skip"); this script listens to
 * them and redraws the figure from the data the figure carries in layout.meta, the same
 * way smallbatch.figures.explorer.cell_traces and smallbatch.analysis.explorer.cell_text
 * drew its first state (the browser check holds the two against each other).
 *
 * It runs on every page of the book and does nothing where there is no explorer.
 */
(function () {
  "use strict";
  var META = "smallbatchExplorer";

  function median(values) {
    var s = values.slice().sort(function (a, b) { return a - b; });
    var mid = Math.floor(s.length / 2);
    return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  }

  // smallbatch.analysis.explorer.cell_text
  function cellText(entry, m, lr) {
    var head = "m = " + m + ", η̃ = 2^" + lr;
    var cell = entry.cells[m + "|" + lr];
    if (!cell) {
      var w = entry.window[String(m)];
      if (!w) { return head + ": no run of this set at m = " + m; }
      return head + ": not trained (this set's window at m = " + m + " is 2^" + w[0] +
        " to 2^" + w[1] + ")";
    }
    var runs = cell.seeds.map(function (seed, k) {
      return cell.status[k] === "complete" ? "seed " + seed + " " + cell.score[k].toFixed(4)
        : "seed " + seed + " diverged in epoch " + cell.diverged[k];
    });
    var n = cell.seeds.length;
    var where = entry.best[String(m)] === lr ? " (this m's best)" : "";
    return head + where + ": median " + median(cell.score).toFixed(4) + " over " + n +
      " seed" + (n !== 1 ? "s" : "") + " (" + runs.join("; ") + ")";
  }

  // smallbatch.figures.explorer.cell_traces
  function cellTraces(entry, m, lr, slots) {
    var cell = entry.cells[m + "|" + lr];
    var traces = [];
    for (var panel = 0; panel < 3; panel++) {
      for (var k = 0; k < slots; k++) {
        if (!cell || k >= cell.seeds.length) {
          traces.push({x: [], y: [], visible: false, name: "slot " + k});
          continue;
        }
        var acc = cell.acc[k], loss = cell.loss[k];
        var epochs = acc.map(function (_, i) { return i + 1; });
        var x = panel === 2 ? epochs.map(function (e) { return e * (cell.steps || 0); })
          : epochs;
        traces.push({x: x, y: panel === 1 ? loss : acc, visible: true,
                     name: "seed " + cell.seeds[k]});
      }
    }
    var curve = entry.curve[String(m)] || [];
    traces.push({x: curve.map(function (p) { return p[0]; }),
                 y: curve.map(function (p) { return p[1]; }),
                 visible: true, name: "m = " + m + ": median"});
    traces.push({x: cell ? cell.score.map(function () { return lr; }) : [],
                 y: cell ? cell.score : [], visible: !!cell, name: "this cell's seeds"});
    return traces;
  }

  function steps(values) {
    return values.map(function (v) { return {method: "skip", label: String(v), args: [null]}; });
  }

  function nearest(values, value) {
    var best = 0;
    values.forEach(function (v, i) {
      if (Math.abs(v - value) < Math.abs(values[best] - value)) { best = i; }
    });
    return best;
  }

  function redraw(gd, set, m, lr) {
    var data = gd.layout.meta[META], slots = gd.layout.meta.slots;
    var entry = data.sets[set];
    var traces = cellTraces(entry, m, lr, slots);
    var update = {x: [], y: [], visible: [], name: []};
    traces.forEach(function (t) {
      update.x.push(t.x); update.y.push(t.y);
      update.visible.push(t.visible); update.name.push(t.name);
    });
    gd._smallbatchState = {set: set, m: m, lr: lr};
    return Plotly.update(gd, update, {
      "title.text": entry.label + "<br><sup>" + cellText(entry, m, lr) + "</sup>"
    }, traces.map(function (_, i) { return i; }));
  }

  function attach(gd) {
    var data = gd.layout.meta[META];
    var menu = gd.layout.updatemenus[0];
    var entry = data.sets[menu.active || 0];
    gd._smallbatchState = {set: menu.active || 0,
                           m: entry.m[gd.layout.sliders[0].active],
                           lr: entry.lr[gd.layout.sliders[1].active]};

    gd.on("plotly_sliderchange", function (e) {
      var s = gd._smallbatchState, entry = data.sets[s.set];
      var which = e.slider.name || (e.slider._index === 0 ? "m" : "lr");
      var index = e.slider.active;
      if (which === "m") { redraw(gd, s.set, entry.m[index], s.lr); }
      else { redraw(gd, s.set, s.m, entry.lr[index]); }
    });

    // A new set of runs: its own grid on both sliders, keeping m and eta_tilde where it
    // has them (else the nearest m, and that m's best eta_tilde).
    gd.on("plotly_buttonclicked", function (e) {
      var s = gd._smallbatchState, set = e.active, entry = data.sets[set];
      var mi = nearest(entry.m, s.m), m = entry.m[mi];
      var lr = entry.m[mi] === s.m && entry.lr.indexOf(s.lr) >= 0 ? s.lr : entry.best[String(m)];
      Plotly.relayout(gd, {
        "sliders[0].steps": steps(entry.m), "sliders[0].active": mi,
        "sliders[1].steps": steps(entry.lr), "sliders[1].active": entry.lr.indexOf(lr)
      }).then(function () { return redraw(gd, set, m, lr); });
    });
  }

  function start() {
    if (!window.Plotly) { return; }
    document.querySelectorAll(".plotly-graph-div").forEach(function (gd) {
      if (gd.layout && gd.layout.meta && gd.layout.meta[META] && !gd._smallbatchState) {
        attach(gd);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
  window.addEventListener("load", start);
})();
