// The comparison page: counts what each pane's transport does and how late each item
// arrives, and charts the delays. htmx and app.js move the items; this only watches.
(function () {
  'use strict';

  var RECENT = 50; // the chart's percentiles are over this many latest items
  var SPAN_MS = 60000; // the chart shows this much time, ending now
  var SVG = 'http://www.w3.org/2000/svg';
  var BOX = { left: 38, right: 294, top: 6, bottom: 56, width: 300, height: 70 };
  var encoder = new TextEncoder();

  function byteLength(text) { return text ? encoder.encode(text).length : 0; }

  // The nearest-rank percentile of numbers sorted ascending.
  function percentile(sorted, p) {
    if (!sorted.length) return null;
    var rank = Math.ceil(p / 100 * sorted.length);
    return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
  }

  function sortedCopy(values) {
    return values.slice().sort(function (a, b) { return a - b; });
  }

  function formatMs(ms) {
    if (ms === null) return '–';
    if (Math.abs(ms) < 1000) return Math.round(ms) + ' ms';
    return Number((ms / 1000).toFixed(ms < 10000 ? 2 : 1)) + ' s';
  }

  function Pane(section) {
    this.section = section;
    this.name = section.id.replace(/-pane$/, '');
    this.transport = section.dataset.pane;
    this.delays = [];
    this.points = [];
    this.seen = new Set();
    this.outputs = {};
    var self = this;
    section.querySelectorAll('output[data-counter]').forEach(function (output) {
      self.outputs[output.dataset.counter] = output;
    });
    this.chart = document.getElementById(this.name + '-chart');
    this.markSeen(section);
  }

  Pane.prototype.count = function (key, by) {
    var output = this.outputs[key];
    if (!output) return;
    var value = (Number(output.dataset.value) || 0) + by;
    output.dataset.value = String(value);
    output.textContent = value.toLocaleString('en');
  };

  Pane.prototype.show = function (key, ms) {
    var output = this.outputs[key];
    if (!output) return;
    output.dataset.value = ms === null ? '' : String(Math.round(ms));
    output.textContent = formatMs(ms);
  };

  // Items already on the page, or brought by a region rendered afresh, are not live
  // arrivals: only remember them, so that an edit of one later is not counted either.
  Pane.prototype.markSeen = function (root) {
    var seen = this.seen;
    if (root.matches && root.matches('article.status')) seen.add(root.id);
    root.querySelectorAll('article.status').forEach(function (item) { seen.add(item.id); });
  };

  Pane.prototype.arrived = function (item, now) {
    var published = Number(item.dataset.publishedMs);
    if (this.seen.has(item.id) || !published) return;
    this.seen.add(item.id);
    var delay = Math.max(0, now - published);
    item.dataset.delayMs = String(delay);
    this.delays.push(delay);
    this.count('shown', 1);

    var all = sortedCopy(this.delays);
    this.show('p50', percentile(all, 50));
    this.show('p95', percentile(all, 95));
    var recent = sortedCopy(this.delays.slice(-RECENT));
    this.points.push({ t: now, p50: percentile(recent, 50), p95: percentile(recent, 95) });
  };

  Pane.prototype.watch = function () {
    var self = this;
    new MutationObserver(function (records) {
      var now = Date.now();
      records.forEach(function (record) {
        var intoList = record.target.classList && record.target.classList.contains('items');
        record.addedNodes.forEach(function (node) {
          if (node.nodeType !== Node.ELEMENT_NODE) return;
          if (intoList && node.matches('article.status')) self.arrived(node, now);
          else self.markSeen(node);
        });
      });
      scheduleDraw();
    }).observe(this.section, { childList: true, subtree: true });
  };

  var panes = [];
  document.querySelectorAll('.compare > .pane[data-pane]').forEach(function (section) {
    var pane = new Pane(section);
    pane.watch();
    panes.push(pane);
  });
  if (!panes.length) return;

  function paneOf(evt) {
    var section = evt.target.closest && evt.target.closest('.pane[data-pane]');
    for (var i = 0; i < panes.length; i++) {
      if (panes[i].section === section) return panes[i];
    }
    return null;
  }

  // Polling: each finished poll, its body, and whether it came back empty. When an
  // answer replaces the control that asked, htmx tells its region instead.
  document.body.addEventListener('htmx:afterRequest', function (evt) {
    var pane = paneOf(evt);
    if (!pane || pane.transport !== 'poll') return;
    var xhr = evt.detail.xhr;
    pane.count('requests', 1);
    pane.count('bytes', byteLength(xhr && xhr.responseText));
    if (xhr && xhr.status === 204) pane.count('empty', 1);
  });

  // SSE: each connection opened (reconnects too) and each event's data.
  document.body.addEventListener('htmx:sseOpen', function (evt) {
    var pane = paneOf(evt);
    if (pane && pane.transport === 'sse') pane.count('requests', 1);
  });
  document.body.addEventListener('htmx:sseBeforeMessage', function (evt) {
    var pane = paneOf(evt);
    if (!pane || pane.transport !== 'sse') return;
    pane.count('events', 1);
    pane.count('bytes', byteLength(evt.detail && evt.detail.data));
  });

  function el(name, attributes, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A round top for the delay axis, so that the panes share a readable scale.
  function niceCeiling(ms) {
    var steps = [100, 200, 500];
    for (var scale = 1; ; scale *= 10) {
      for (var i = 0; i < steps.length; i++) {
        if (steps[i] * scale >= ms) return steps[i] * scale;
      }
    }
  }

  // Both charts at once, on one delay scale, so that their heights compare.
  function draw() {
    var now = Date.now();
    var top = 0;
    panes.forEach(function (pane) {
      pane.points = pane.points.filter(function (point) { return now - point.t <= SPAN_MS; });
      pane.points.forEach(function (point) { top = Math.max(top, point.p95); });
    });
    top = niceCeiling(Math.max(top, 1));
    panes.forEach(function (pane) { drawChart(pane, now, top); });
  }

  function drawChart(pane, now, top) {
    var svg = pane.chart;
    if (!svg) return;
    var x = function (t) {
      return BOX.right - (now - t) / SPAN_MS * (BOX.right - BOX.left);
    };
    var y = function (ms) {
      return BOX.bottom - Math.min(ms, top) / top * (BOX.bottom - BOX.top);
    };
    svg.replaceChildren();
    [0, top / 2, top].forEach(function (ms) {
      svg.appendChild(el('line', {
        class: 'grid', x1: BOX.left, x2: BOX.right, y1: y(ms), y2: y(ms)
      }));
      svg.appendChild(el('text', {
        class: 'label', x: BOX.left - 4, y: y(ms) + 3, 'text-anchor': 'end'
      }, formatMs(ms)));
    });
    svg.appendChild(el('text', {
      class: 'label', x: BOX.left, y: BOX.height - 4, 'text-anchor': 'start'
    }, '−60 s'));
    svg.appendChild(el('text', {
      class: 'label', x: BOX.right, y: BOX.height - 4, 'text-anchor': 'end'
    }, 'now'));

    ['p95', 'p50'].forEach(function (key) {
      var coordinates = pane.points.map(function (point) {
        return x(point.t).toFixed(1) + ',' + y(point[key]).toFixed(1);
      });
      // One point alone is drawn as a short level line, so that it shows.
      if (coordinates.length === 1) {
        coordinates.unshift((x(pane.points[0].t) - 3).toFixed(1) + ',' +
          y(pane.points[0][key]).toFixed(1));
      }
      if (coordinates.length) {
        svg.appendChild(el('polyline', { class: key, points: coordinates.join(' ') }));
      }
    });
    if (!pane.points.length) {
      svg.appendChild(el('text', {
        class: 'label', x: (BOX.left + BOX.right) / 2, y: (BOX.top + BOX.bottom) / 2,
        'text-anchor': 'middle'
      }, 'waiting for live items…'));
    }
    svg.dataset.points = String(pane.points.length);
    svg.dataset.top = String(top);
  }

  var drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(function () {
      drawPending = false;
      draw();
    });
  }

  draw();
  setInterval(draw, 1000);
})();
