/* Figures that read on a phone and on a laptop (book: every chapter with a figure).
 *
 * Each plotly figure of the book is built for a column about 800 px wide. This script fits
 * every one to the width it is shown at, in the browser, with Plotly.relayout only:
 *
 * - at any width, a title longer than the figure is wrapped (<br>) and the top margin
 *   grows until the title clears what sits above the plot (subplot titles, menus);
 * - in a figure narrower than NARROW_PX (a phone), panels side by side are stacked one
 *   above the other, the legend goes under the plot, lying flat, with room made for it,
 *   titles, subplot titles, axis titles, ticks and legend get smaller type, and every
 *   title is wrapped to the width;
 * - then it measures: a text that still runs past the figure's edge or over another is
 *   wrapped, or set smaller, and measured again.
 *
 * Every key it changes is remembered with its value as built, so a figure that widens
 * again (a window turned or resized) gets its built layout back. A title a slider step,
 * a menu button or explorer.js sets is wrapped again when it arrives; the title as set
 * (without the added line breaks) is kept as the figure's own. The provenance note is not
 * in any title (smallbatch_book.render puts it in a line under the figure).
 *
 * It runs on every page of the book and does nothing where there is no figure.
 */
(function () {
  "use strict";

  var NARROW_PX = 640;  // a figure narrower than this gets the phone layout
  var GAP = 8;          // px kept between a figure's texts
  var CELL_GAP = 100;   // px between stacked panels: ticks, axis title, next panel's title
  var PHONE = {title: 15, annotation: 13, axisTitle: 12, tick: 11, legend: 11, menu: 11};
  var MIN_FONT = 9;
  var FAMILY = '"Open Sans", verdana, arial, sans-serif';

  // ------------------------------------------------------------------ small helpers

  function get(obj, path) {
    var keys = path.replace(/\[(\d+)\]/g, ".$1").split(".");
    for (var i = 0; i < keys.length; i++) {
      if (obj === null || obj === undefined) { return undefined; }
      obj = obj[keys[i]];
    }
    return obj;
  }

  function copy(value) {
    return value === undefined ? null : JSON.parse(JSON.stringify(value));
  }

  function same(a, b) {
    return JSON.stringify(a === undefined ? null : a) === JSON.stringify(b === undefined ? null : b);
  }

  function clamp(value, low, high) { return Math.max(low, Math.min(high, value)); }

  var decoder = document.createElement("textarea");
  function plain(text) {
    decoder.innerHTML = String(text).replace(/<br\s*\/?>/gi, " ").replace(/<[^>]*>/g, "");
    return decoder.value;
  }

  var canvas = document.createElement("canvas").getContext("2d");
  function textWidth(text, size, family) {
    canvas.font = size + "px " + (family || FAMILY);
    return canvas.measureText(plain(text)).width;
  }

  // Words of a line of plotly text, split at spaces outside tags.
  function words(text) {
    var out = [], word = "", depth = 0;
    for (var i = 0; i < text.length; i++) {
      var c = text[i];
      if (c === "<") { depth++; } else if (c === ">") { depth = Math.max(0, depth - 1); }
      if (c === " " && depth === 0) {
        if (word) { out.push(word); }
        word = "";
      } else {
        word += c;
      }
    }
    if (word) { out.push(word); }
    return out;
  }

  // Break one line into lines no wider than width (a word longer than width stands alone).
  function breakLine(text, width, size, family) {
    var lines = [], line = "";
    words(text).forEach(function (word) {
      var next = line ? line + " " + word : word;
      if (line && textWidth(next, size, family) > width) {
        lines.push(line);
        line = word;
      } else {
        line = next;
      }
    });
    if (line) { lines.push(line); }
    return lines.length ? lines : [text];
  }

  // A label cut at a word to fit width px, with an ellipsis.
  function cut(text, width, size) {
    var parts = words(plain(text)), out = "";
    for (var i = 0; i < parts.length; i++) {
      var next = out ? out + " " + parts[i] : parts[i];
      if (textWidth(next + " …", size) > width) { break; }
      out = next;
    }
    return (out || parts[0]) + " …";
  }

  // Break a line into as few lines as at width px, but as even as they can be (no word left
  // alone on the last line).
  function balance(text, width, size, family) {
    var lines = breakLine(text, width, size, family);
    if (lines.length < 2) { return lines; }
    var low = width / lines.length, high = width;
    for (var i = 0; i < 12 && high - low > 2; i++) {
      var mid = (low + high) / 2;
      if (breakLine(text, mid, size, family).length > lines.length) { low = mid; } else { high = mid; }
    }
    return breakLine(text, high, size, family);
  }

  var SUP = /^\s*<sup>([\s\S]*)<\/sup>\s*$/i;

  // Wrap plotly text (lines split by <br>; a line that is all <sup> stays <sup>, at the
  // 70% size plotly draws it) to width px.
  function wrapText(text, width, size, family) {
    return String(text).split(/<br\s*\/?>/i).map(function (line) {
      var sup = SUP.exec(line);
      if (sup) {
        return balance(sup[1], width, 0.7 * size, family).map(function (part) {
          return "<sup>" + part + "</sup>";
        }).join("<br>");
      }
      return balance(line, width, size, family).join("<br>");
    }).join("<br>");
  }

  function widest(text, size, family) {
    return Math.max.apply(null, String(text).split(/<br\s*\/?>/i).map(function (line) {
      var sup = SUP.exec(line);
      return sup ? textWidth(sup[1], 0.7 * size, family) : textWidth(line, size, family);
    }));
  }

  function titleText(layout) {
    var title = layout && layout.title;
    if (typeof title === "string") { return title; }
    return title && typeof title.text === "string" ? title.text : "";
  }

  // ---------------------------------------------------------------------- state

  function state(gd) {
    if (!gd._smallbatchFit) {
      var box = gd.parentElement;
      gd._smallbatchFit = {
        built: {},        // key -> its value as built, for every key this script changed
        raw: titleText(gd.layout),  // the title as its figure (or a slider) set it
        shown: null,      // the title text this script last set
        narrow: false,
        width: 0,
        fixes: {},        // what the clash pass added at this width
        plotHeight: builtPlotHeight(gd),  // px, as the figure was designed
        targetPlot: null,  // px the plot area should have in the current layout
        traces: {},       // trace attribute -> {trace index: its value as built}, where changed
        boxHeight: box && /px$/.test(box.style.height) ? box.style.height : null,
        running: null,
        again: false
      };
    }
    return gd._smallbatchFit;
  }

  // The plot area's height as the figure was built (plotly's default margins: t 100, b 80).
  function builtPlotHeight(gd) {
    var layout = gd.layout || {}, margin = layout.margin || {};
    var height = typeof layout.height === "number" ? layout.height
      : gd._fullLayout ? gd._fullLayout.height : 480;
    return height - (typeof margin.t === "number" ? margin.t : 100) -
      (typeof margin.b === "number" ? margin.b : 80);
  }

  function built(gd, key) {
    var st = state(gd);
    return key in st.built ? st.built[key] : copy(get(gd.layout, key));
  }

  // The figure's layout keeps its title as its figure, slider or script set it (what a
  // script or a test reads back); only the drawing has the line breaks. Plotly draws
  // from the layout, so the wrapped text is put there for the fit's relayouts and the
  // title as set is put back, silently, when the fit ends.
  function holdTitle(gd, text) {
    var layout = gd.layout;
    if (!layout.title || typeof layout.title !== "object") {
      layout.title = {text: titleText(layout)};
    }
    layout.title.text = text;
  }

  // The renderer puts each figure in a <div> of the figure's height; keep the two equal.
  function setBoxHeight(gd) {
    var st = state(gd), box = gd.parentElement;
    if (!box || !st.boxHeight) { return; }
    var height = gd.layout.height;
    box.style.height = typeof height === "number" ? height + "px" : st.boxHeight;
  }

  // Relayout with the keys of update that differ from the figure, remembering the built
  // value of each key before its first change.
  function apply(gd, update) {
    var st = state(gd), changes = {};
    Object.keys(update).forEach(function (key) {
      var now = get(gd.layout, key);
      if (key === "title.text") {
        st.shown = update[key];
        now = gd._fullLayout.title.text;  // as drawn (the layout holds the title as set)
      } else if (!(key in st.built)) {
        st.built[key] = copy(now);
      }
      if (!same(now, update[key])) { changes[key] = update[key]; }
    });
    if (!Object.keys(changes).length) { return Promise.resolve(false); }
    if ("height" in changes && typeof changes.height === "number") {
      var box = gd.parentElement;
      if (box && st.boxHeight) { box.style.height = changes.height + "px"; }
    }
    return Promise.resolve(Plotly.relayout(gd, changes)).then(function () {
      setBoxHeight(gd);
      return true;
    });
  }

  // ------------------------------------------------------------------- measuring

  function rect(el, frame) {
    var b = el.getBoundingClientRect();
    return {left: b.left - frame.left, right: b.right - frame.left,
            top: b.top - frame.top, bottom: b.bottom - frame.top,
            width: b.width, height: b.height};
  }

  function visible(b) { return b.width >= 1 && b.height >= 1; }

  // The texts of a figure, by kind, as the reading check sees them, plus its controls.
  function measure(gd) {
    var frame = gd.getBoundingClientRect(), fl = gd._fullLayout, items = [];
    function add(kind, el, extra) {
      var b = rect(el, frame);
      if (!visible(b)) { return; }
      var item = {kind: kind, el: el, box: b};
      Object.keys(extra || {}).forEach(function (k) { item[k] = extra[k]; });
      items.push(item);
    }
    gd.querySelectorAll("g.g-gtitle text").forEach(function (el) { add("title", el); });
    gd.querySelectorAll('g[class*="g-x"][class*="title"] text').forEach(function (el) {
      add("x axis title", el, {axis: axisOf(el, "x")});
    });
    gd.querySelectorAll('g[class*="g-y"][class*="title"] text').forEach(function (el) {
      add("y axis title", el, {axis: axisOf(el, "y")});
    });
    gd.querySelectorAll("g.annotation").forEach(function (el) {
      var text = el.querySelector("g.annotation-text-g") || el;
      add("annotation", text, {index: Number(el.getAttribute("data-index"))});
    });
    gd.querySelectorAll("g.legend").forEach(function (el) { add("legend", el); });
    gd.querySelectorAll("g.slider-container").forEach(function (el) { add("slider", el); });
    gd.querySelectorAll("g.updatemenu-container").forEach(function (el) { add("menu", el); });
    gd.querySelectorAll("g.xtick text, g.x2tick text, g.xaxislayer-above text")
      .forEach(function (el) { add("tick", el); });
    gd.querySelectorAll("g.colorbar").forEach(function (el) { add("colorbar", el); });
    var size = fl._size;
    return {items: items, width: frame.width, height: frame.height,
            plotTop: size.t, plotBottom: size.t + size.h};
  }

  // "xaxis2" from a title's group class, e.g. "g-x2title".
  function axisOf(el, letter) {
    var group = el.closest("g[class*='title']");
    var m = group && /g-([xy]\d*)title/.exec(group.getAttribute("class"));
    var id = m ? m[1] : letter;
    return letter + "axis" + id.slice(1);
  }

  var CHECKED = {"title": 1, "x axis title": 1, "y axis title": 1, "annotation": 1, "legend": 1};

  // Texts that overlap one another or run past the figure (as tests/book/reading_checks.py
  // counts them).
  function clashes(m) {
    var texts = m.items.filter(function (item) { return CHECKED[item.kind]; });
    var out = [];
    texts.forEach(function (item) {
      var b = item.box;
      if (b.left < -1 || b.right > m.width + 1 || b.top < -1 || b.bottom > m.height + 1) {
        out.push({kind: "edge", a: item});
      }
    });
    for (var i = 0; i < texts.length; i++) {
      for (var j = i + 1; j < texts.length; j++) {
        var a = texts[i].box, b = texts[j].box;
        var w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        var h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 2 && h > 2) { out.push({kind: "overlap", a: texts[i], b: texts[j]}); }
      }
    }
    return out;
  }

  // ----------------------------------------------------------- the phone layout

  // Panels side by side -> one column: {axis key: new domain}, and where each panel went.
  function stacking(gd) {
    var fl = gd._fullLayout;
    var subplots = (fl._subplots && fl._subplots.cartesian) || [];
    if (subplots.length < 2) { return null; }
    var cells = {}, order = [], used = {};
    var ok = subplots.every(function (id) {
      var m = /^x(\d*)y(\d*)$/.exec(id);
      if (!m) { return false; }
      var xa = "xaxis" + m[1], ya = "yaxis" + m[2];
      if (used[xa] || used[ya]) { return false; }  // a shared axis: leave the figure be
      used[xa] = used[ya] = true;
      if (fl[ya] && fl[ya].overlaying && fl[ya].overlaying !== false) { return false; }
      var xd = built(gd, xa + ".domain") || [0, 1], yd = built(gd, ya + ".domain") || [0, 1];
      var key = xd.map(function (v) { return v.toFixed(3); }).join() + "|" +
        yd.map(function (v) { return v.toFixed(3); }).join();
      if (!cells[key]) { cells[key] = {xd: xd, yd: yd, axes: []}; order.push(cells[key]); }
      cells[key].axes.push(xa, ya);
      return true;
    });
    if (!ok) { return null; }
    var columns = {};
    order.forEach(function (c) { columns[c.xd[0].toFixed(3)] = true; });
    if (Object.keys(columns).length < 2) { return null; }
    order.sort(function (a, b) { return (b.yd[1] - a.yd[1]) || (a.xd[0] - b.xd[0]); });
    return order;
  }

  function inCell(cell, x, y) {
    var tol = 0.04;
    return x >= cell.xd[0] - tol && x <= cell.xd[1] + tol &&
      y >= cell.yd[0] - tol && y <= cell.yd[1] + tol;
  }

  function phoneLayout(gd, width) {
    var st = state(gd), fl = gd._fullLayout, u = {};
    var current = st.narrow && st.width === width;
    var plotHeight = st.plotHeight || fl._size.h;

    // panels: one column
    var cells = stacking(gd), newPlot;
    if (cells) {
      var cellHeight = Math.round(clamp(0.72 * width, 220, 300));
      newPlot = cells.length * cellHeight + (cells.length - 1) * CELL_GAP;
      cells.forEach(function (cell, i) {
        var top = 1 - i * (cellHeight + CELL_GAP) / newPlot;
        cell.ny = [top - cellHeight / newPlot, top];
        cell.axes.forEach(function (axis) {
          u[axis + ".domain"] = axis.charAt(0) === "x" ? [0, 1] : cell.ny.slice();
          // a panel that shared its neighbour's tick labels stands alone now: its own
          if (built(gd, axis + ".matches") && built(gd, axis + ".showticklabels") === false) {
            u[axis + ".showticklabels"] = true;
          }
        });
      });
      (gd.layout.annotations || []).forEach(function (a, i) {
        var x = built(gd, "annotations[" + i + "].x"), y = built(gd, "annotations[" + i + "].y");
        if (a.xref !== "paper" || a.yref !== "paper" || typeof x !== "number") { return; }
        cells.some(function (cell) {
          if (!inCell(cell, x, y)) { return false; }
          u["annotations[" + i + "].x"] = (x - cell.xd[0]) / (cell.xd[1] - cell.xd[0]);
          u["annotations[" + i + "].y"] = cell.ny[0] +
            (y - cell.yd[0]) / (cell.yd[1] - cell.yd[0]) * (cell.ny[1] - cell.ny[0]);
          return true;
        });
      });
    } else {
      newPlot = Math.round(clamp(plotHeight, 240, 1.2 * width));
    }

    // what hangs above or below the plot in paper units keeps its distance in px
    function keep(key) {
      var y = built(gd, key);
      if (typeof y !== "number") { return; }
      if (y > 1) { u[key] = 1 + (y - 1) * plotHeight / newPlot; }
      else if (y < 0) { u[key] = y * plotHeight / newPlot; }
    }
    (gd.layout.sliders || []).forEach(function (s, i) { keep("sliders[" + i + "].y"); });
    (gd.layout.updatemenus || []).forEach(function (menu, i) {
      var key = "updatemenus[" + i + "]";
      keep(key + ".y");
      u[key + ".font.size"] = PHONE.menu;
      // a row of buttons wider than the figure becomes a column; labels are cut to the width
      var buttons = menu.buttons || [];
      var direction = built(gd, key + ".direction") || "down";
      if ((built(gd, key + ".type") || "dropdown") === "buttons" &&
          (direction === "left" || direction === "right")) {
        var row = buttons.reduce(function (sum, button) {
          return sum + textWidth(button.label || "", PHONE.menu) + 24;
        }, 0);
        if (row > width - 90) { u[key + ".direction"] = "down"; }  // it starts at the plot
      }
      var room = width - 120;  // from the plot's left edge, less the arrow and padding
      buttons.forEach(function (button, j) {
        var label = built(gd, key + ".buttons[" + j + "].label");
        if (typeof label === "string" && textWidth(label, PHONE.menu) > room) {
          u[key + ".buttons[" + j + "].label"] = cut(label, room, PHONE.menu);
        }
      });
    });
    st.targetPlot = newPlot;

    // the title, pinned to the top, left, smaller
    u["title.font.size"] = PHONE.title;
    u["title.x"] = 0;
    u["title.xref"] = "container";
    u["title.xanchor"] = "left";
    u["title.pad.l"] = 10;
    u["title.y"] = 1;
    u["title.yref"] = "container";
    u["title.yanchor"] = "top";
    u["title.pad.t"] = 10;

    // smaller type
    (gd.layout.annotations || []).forEach(function (a, i) {
      var size = (fl.annotations[i] && fl.annotations[i].font.size) || 12;
      var was = built(gd, "annotations[" + i + "].font.size");
      if ((was || size) > PHONE.annotation) { u["annotations[" + i + "].font.size"] = PHONE.annotation; }
    });
    Object.keys(fl).forEach(function (key) {
      if (!/^[xy]axis\d*$/.test(key) || !fl[key] || !fl[key]._id) { return; }
      u[key + ".title.font.size"] = PHONE.axisTitle;
      u[key + ".tickfont.size"] = PHONE.tick;
    });

    // the legend under everything, lying flat
    if (fl.showlegend) {
      u["legend.orientation"] = "h";
      u["legend.xref"] = "container";
      u["legend.x"] = 0;
      u["legend.xanchor"] = "left";
      u["legend.yref"] = "container";
      u["legend.y"] = 0;
      u["legend.yanchor"] = "bottom";
      u["legend.font.size"] = PHONE.legend;
      u["legend.title.side"] = "top left";
    }

    // margins: a first guess, measured and set right afterwards
    var top = current ? gd.layout.margin.t : 80, bottom = current ? gd.layout.margin.b : 120;
    u["margin.l"] = 50;
    u["margin.r"] = 14;
    u["margin.t"] = top;
    u["margin.b"] = bottom;
    u.height = Math.round(top + newPlot + bottom);
    return u;
  }

  // ---------------------------------------------------------------------- fitting

  function titleRoom(gd, width, narrow) {
    if (narrow) { return width - 20; }
    var fl = gd._fullLayout, t = fl.title, size = fl._size;
    var x = t.xref === "paper" ? size.l + t.x * size.w : t.x * width;
    var anchor = t.xanchor === "auto" ? (t.x < 1 / 3 ? "left" : t.x > 2 / 3 ? "right" : "center")
      : t.xanchor;
    if (anchor === "left") { return width - x - 12; }
    if (anchor === "right") { return x - 12; }
    return 2 * Math.min(x, width - x) - 24;
  }

  // Make the top margin fit the title and what hangs above the plot; in the phone layout
  // also the bottom margin fit what hangs below (the legend last). Keeps the plot's height.
  function settle(gd, narrow, round) {
    var st = state(gd), m = measure(gd), u = {};
    var title = m.items.filter(function (i) { return i.kind === "title"; });
    var titleBottom = title.length ? Math.max.apply(null, title.map(function (i) { return i.box.bottom; })) : 0;
    if (titleBottom) { titleBottom += st.reserve || 0; }
    var above = m.items.filter(function (i) {
      return i.kind !== "title" && i.kind !== "tick" && i.box.top < m.plotTop - 1 &&
        i.box.bottom <= m.plotTop + 4 + (i.kind === "annotation" ? 40 : 0) && !(narrow && i.kind === "legend");
    });
    var highest = above.length ? Math.min.apply(null, above.map(function (i) { return i.box.top; }))
      : m.plotTop;
    var top = gd._fullLayout._size.t, height = gd._fullLayout.height;
    var dTop = titleBottom ? titleBottom + GAP - highest : 0;
    if (!narrow && dTop < 0) { dTop = 0; }
    // at one width the top margin only grows: a slider that retitles never moves the plot up
    if (st.topFloor && top + dTop < st.topFloor) { dTop = st.topFloor - top; }
    st.topFloor = Math.max(st.topFloor || 0, top + dTop);
    if (!narrow && title.length && dTop > 0 && !pinned(gd)) {
      // the title floats in the margin: hang it from the top before making room
      return apply(gd, pinTitle(gd)).then(function () { return settle(gd, narrow, round + 1); });
    }
    var dBottom = 0, dPlot = 0, titleTop = title.length
      ? Math.min.apply(null, title.map(function (i) { return i.box.top; })) : GAP;
    if ((titleTop < 2 || (narrow && title.length && Math.abs(titleTop - GAP) > 2)) && round < 4) {
      // plotly moves a title of several lines up by about half of the extra lines (less for
      // <sup> lines): on a phone its first line is set GAP px from the top
      u["title.pad.t"] = Math.max(0, Math.round((gd._fullLayout.title.pad.t || 0) + GAP - titleTop));
    }
    if (narrow && st.targetPlot) { dPlot = st.targetPlot - gd._fullLayout._size.h; }
    if (narrow) {
      var legend = m.items.filter(function (i) { return i.kind === "legend"; })[0];
      var below = m.items.filter(function (i) {
        return i.kind !== "legend" && i.kind !== "title" && i.box.bottom > m.plotBottom + 1;
      });
      var lowest = below.length ? Math.max.apply(null, below.map(function (i) { return i.box.bottom; }))
        : m.plotBottom;
      dBottom = legend ? lowest + GAP - legend.box.top : lowest + GAP - m.height;
    }
    if (Math.abs(dTop) < 1 && Math.abs(dBottom) < 1 && Math.abs(dPlot) < 1 &&
        !("title.pad.t" in u)) {
      return Promise.resolve();
    }
    u["margin.t"] = Math.round(top + dTop);
    if (narrow) { u["margin.b"] = Math.round(gd._fullLayout._size.b + dBottom); }
    u.height = Math.round(height + dTop + dBottom + dPlot);
    if (round > 6) { return Promise.resolve(); }
    return apply(gd, u).then(function (changed) {
      return changed ? settle(gd, narrow, round + 1) : null;
    });
  }

  // Whether the title hangs from the top of the figure (as shown, or as built).
  function pinned(gd, asBuilt) {
    if (asBuilt) {
      return built(gd, "title.yref") === "container" && built(gd, "title.y") === 1 &&
        built(gd, "title.yanchor") === "top";
    }
    var t = gd._fullLayout.title;
    return t.yref === "container" && t.y === 1 && t.yanchor === "top";
  }

  function pinTitle(gd) {
    return {"title.y": 1, "title.yref": "container", "title.yanchor": "top",
            "title.pad.t": Math.max(built(gd, "title.pad.t") || 0, 12)};
  }

  // One pass over what still clashes: wrap or shrink the texts concerned. Returns whether
  // it changed anything.
  function mend(gd, width, narrow) {
    var st = state(gd), fl = gd._fullLayout, m = measure(gd), u = {};
    clashes(m).forEach(function (clash) {
      [clash.a, clash.b].forEach(function (item) {
        if (!item) { return; }
        var key, size, text, room;
        if (item.kind === "annotation" && !isNaN(item.index)) {
          var i = item.index, a = fl.annotations[i];
          key = "annotations[" + i + "]";
          size = (u[key + ".font.size"] || a.font.size);
          text = u[key + ".text"] || a.text;
          room = a.xref === "paper" || /domain$/.test(a.xref) ? fl._size.w : width - 20;
          if (a.xref === "paper" && !narrow) {
            room = subplotWidth(gd, a.x) || room;
          }
          if (widest(text, size, fl.font.family) > room - 4) {
            u[key + ".text"] = wrapText(text, room - 8, size, fl.font.family);
          } else if (size > MIN_FONT + 1) {
            u[key + ".font.size"] = size - 1;
          }
        } else if (/axis title$/.test(item.kind) && fl[item.axis]) {
          var ax = fl[item.axis];
          key = item.axis + ".title";
          size = u[key + ".font.size"] || ax.title.font.size;
          text = u[key + ".text"] || ax.title.text;
          room = item.kind === "x axis title" ? ax._length : ax._length + 20;
          if (widest(text, size, fl.font.family) > room - 4 && text.indexOf("<br>") < 0) {
            u[key + ".text"] = wrapText(text, Math.max(room - 8, widest(text, size) / 2 + 10),
                                        size, fl.font.family);
          } else if (size > MIN_FONT + 1) {
            u[key + ".font.size"] = size - 1;
          }
        } else if (item.kind === "title" && (item.box.left < -1 || item.box.right > m.width + 1)) {
          st.titleShrink = (st.titleShrink || 1) * 0.92;
          u["title.text"] = wrapText(st.raw, titleRoom(gd, width, narrow) * st.titleShrink,
                                     fl.title.font.size, fl.title.font.family);
        } else if (item.kind === "legend" && narrow) {
          var lsize = u["legend.font.size"] || fl.legend.font.size;
          if (lsize > MIN_FONT) { u["legend.font.size"] = lsize - 1; }
        }
      });
    });
    Object.keys(u).forEach(function (k) { if (k !== "title.text") { st.fixes[k] = u[k]; } });
    return apply(gd, u);
  }

  function subplotWidth(gd, x) {
    var fl = gd._fullLayout, best = null;
    Object.keys(fl).forEach(function (key) {
      var ax = fl[key];
      if (/^xaxis\d*$/.test(key) && ax && ax.domain && x >= ax.domain[0] - 0.01 &&
          x <= ax.domain[1] + 0.01) {
        best = Math.max(best || 0, ax._length);
      }
    });
    return best;
  }

  // The titles the figure's slider steps and menu buttons set.
  function controlTitles(gd) {
    var out = [];
    function take(update) {
      if (!update || typeof update !== "object") { return; }
      var text = typeof update["title.text"] === "string" ? update["title.text"]
        : update.title !== undefined ? titleText(update) : null;
      if (text) { out.push(text); }
    }
    (gd.layout.sliders || []).concat(gd.layout.updatemenus || []).forEach(function (control) {
      (control.steps || control.buttons || []).forEach(function (item) {
        var args = item.args || [];
        if (item.method === "update") { take(args[1]); }
        else if (item.method === "relayout") { take(args[0]); }
      });
    });
    return out;
  }

  function fit(gd) {
    var st = state(gd);
    var width = Math.round(gd.getBoundingClientRect().width);
    if (!width || !gd._fullLayout || !gd._fullLayout._size) { return Promise.resolve(); }
    if (width !== st.width) { st.fixes = {}; st.titleShrink = 1; st.topFloor = 0; }
    var narrow = width < NARROW_PX;
    // start from the figure as built wherever this script changed it ...
    var u = {};
    Object.keys(st.built).forEach(function (key) { u[key] = st.built[key]; });
    // ... then lay it out for a phone, and wrap its title to the width
    if (narrow) {
      var phone = phoneLayout(gd, width);
      Object.keys(phone).forEach(function (key) { u[key] = phone[key]; });
      Object.keys(st.fixes).forEach(function (key) { u[key] = st.fixes[key]; });
    }
    var fl = gd._fullLayout;
    var size = narrow ? PHONE.title : (built(gd, "title.font.size") || fl.title.font.size);
    var room = titleRoom(gd, width, narrow) * (st.titleShrink || 1);
    var family = fl.title.font.family;
    var fitted = function (raw) {
      return widest(raw, size, family) > room ? wrapText(raw, room, size, family) : raw;
    };
    var text = fitted(st.raw);
    // room for the longest title its sliders and menus set, so that moving one does not move
    // the figure under the reader's finger
    var lineCount = function (t) { return t.split(/<br\s*\/?>/i).length; };
    var most = controlTitles(gd).reduce(function (n, t) { return Math.max(n, lineCount(fitted(t))); },
                                        lineCount(text));
    st.reserve = (most - lineCount(text)) * 1.3 * size;
    if (!narrow && text !== st.raw && !pinned(gd, true)) {
      var pin = pinTitle(gd);
      Object.keys(pin).forEach(function (key) { u[key] = pin[key]; });
    }
    u["title.text"] = text;
    if (narrow) {
      // plotly moves a title of several lines up by half of the extra lines
      var lines = text.split(/<br\s*\/?>/i).length;
      u["title.pad.t"] = Math.round(10 + (lines - 1) * 0.65 * size);
    }
    if (!narrow) {
      Object.keys(st.fixes).forEach(function (key) { u[key] = st.fixes[key]; });
    }
    if (narrow || typeof gd.layout.width === "number") {
      // drawn at the column's width, set here: plotly's own resize gives up on a figure
      // whose layout has both a width and a height
      u.width = width;
    }
    st.narrow = narrow;
    st.width = width;
    holdTitle(gd, text);
    return restyleTraces(gd, width, narrow)
      .then(function () { return apply(gd, u); })
      .then(function () { return settle(gd, narrow, 0); })
      .then(function () { return mendRounds(gd, width, narrow, 0); })
      .then(function () { holdTitle(gd, st.raw); });
  }

  // What the phone layout changes in the traces themselves: {attribute: {trace: value}}.
  // A legend entry wider than the phone gets its name wrapped; a heatmap whose cells are
  // narrower than their numbers shows no numbers (hover still gives each); a colour bar is
  // thinner, its title along it.
  function traceChanges(gd, width) {
    var out = {name: {}, texttemplate: {}, "colorbar.thickness": {}, "colorbar.title.side": {}};
    var st = state(gd), plotWidth = width - 64 - 14;
    (gd.data || []).forEach(function (trace, i) {
      var full = gd._fullData[i] || {};
      var name = i in (st.traces.name || {}) ? st.traces.name[i] : trace.name;
      if (typeof name === "string" && full.showlegend !== false && full.visible !== false) {
        var room = width - 80;
        if (textWidth(name, PHONE.legend) > room) {
          out.name[i] = wrapText(name, room, PHONE.legend);
        }
      }
      if (full.type === "heatmap" && full.showscale !== false) {
        out["colorbar.thickness"][i] = 12;
        out["colorbar.title.side"][i] = "right";
        plotWidth -= 60;
      }
      var template = i in (st.traces.texttemplate || {}) ? st.traces.texttemplate[i] : trace.texttemplate;
      if (full.type === "heatmap" && template && Array.isArray(trace.x)) {
        var size = (full.textfont && full.textfont.size) || 12, texts = [].concat.apply([], trace.text || []);
        var longest = texts.reduce(function (w, t) { return Math.max(w, textWidth(String(t), size)); }, 0);
        if (plotWidth / trace.x.length < longest + 2) { out.texttemplate[i] = ""; }
      }
    });
    return out;
  }

  // Set the trace attributes the phone layout wants; put back, as built, those it no
  // longer wants (all of them in the wide layout).
  function restyleTraces(gd, width, narrow) {
    var st = state(gd), wanted = narrow ? traceChanges(gd, width) : {}, chain = Promise.resolve();
    var attributes = Object.keys(st.traces);
    Object.keys(wanted).forEach(function (a) { if (attributes.indexOf(a) < 0) { attributes.push(a); } });
    attributes.forEach(function (attribute) {
      var record = st.traces[attribute] = st.traces[attribute] || {}, want = wanted[attribute] || {};
      var indices = [], values = [];
      (gd.data || []).forEach(function (trace, i) {
        var value = i in want ? want[i] : i in record ? record[i] : undefined;
        if (value === undefined) { return; }
        if (!(i in record)) { record[i] = copy(get(trace, attribute)); }
        if (!same(get(trace, attribute), value)) { indices.push(i); values.push(value); }
      });
      if (indices.length) {
        var update = {};
        update[attribute] = values;
        chain = chain.then(function () { return Plotly.restyle(gd, update, indices); });
      }
    });
    return chain;
  }

  function mendRounds(gd, width, narrow, round) {
    if (round >= 6) { return Promise.resolve(); }
    return mend(gd, width, narrow).then(function (changed) {
      if (!changed) { return null; }
      return settle(gd, narrow, 0).then(function () {
        return mendRounds(gd, width, narrow, round + 1);
      });
    });
  }

  // One fit at a time a figure; a request while one runs makes it run once more after.
  function schedule(gd) {
    var st = state(gd);
    if (st.running) { st.again = true; return st.running; }
    st.running = fit(gd).catch(function (error) {
      if (window.console) { console.warn("responsive.js:", error); }
    }).then(function () {
      st.running = null;
      if (st.again) { st.again = false; return schedule(gd); }
      return null;
    });
    return st.running;
  }

  // A title set from outside (a slider step, a menu button, explorer.js): keep it as the
  // figure's own and wrap it again.
  function retitled(gd, layoutUpdate) {
    var st = state(gd), text = null;
    if (layoutUpdate && typeof layoutUpdate["title.text"] === "string") {
      text = layoutUpdate["title.text"];
    } else if (layoutUpdate && layoutUpdate.title !== undefined) {
      text = titleText(layoutUpdate);
    }
    if (text !== null && text !== st.shown) {
      st.raw = text;
      schedule(gd);
    } else if (!st.running && st.shown !== null && gd._fullLayout.title.text !== st.shown) {
      // another relayout drew the title from the layout, unwrapped: wrap it again
      schedule(gd);
    }
  }

  function attach(gd) {
    if (gd._smallbatchFit || !gd.on || !gd._fullLayout) { return; }
    state(gd);
    gd.on("plotly_relayout", function (update) { retitled(gd, update); });
    gd.on("plotly_update", function (update) { retitled(gd, update && update.layout); });
    gd.on("plotly_afterplot", function () { retitled(gd, null); });
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        var width = Math.round(gd.getBoundingClientRect().width);
        if (width && width !== state(gd).width) { schedule(gd); }
      }).observe(gd);
    }
    schedule(gd);
  }

  function start() {
    if (!window.Plotly) { return; }
    document.querySelectorAll(".plotly-graph-div").forEach(function (gd) {
      if (gd._fullLayout) { attach(gd); }
      else if (gd.on) { gd.on("plotly_afterplot", function () { attach(gd); }); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
  window.addEventListener("load", start);
})();
