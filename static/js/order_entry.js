// Order entry, keyboard first. Search-as-you-type comboboxes (the customer, a product per line) whose
// suggestions come from the server through htmx; arrows move, Enter takes, Esc closes. Enter moves on
// to the next field and, in a line's last field, to a new line; Ctrl+Enter saves and confirms.
// Lines are added (a blank row from the server) and removed in place; the totals panel asks the
// server for the figures (billing.money's rounding) whenever a line changes.
(function () {
  "use strict";
  var form = document.getElementById("order-form");
  if (!form || !window.htmx) return;
  var tbody = document.getElementById("order-lines");
  var submitting = false;
  var adding = null;

  function recalc() {
    document.body.dispatchEvent(new CustomEvent("otc:recalc"));
  }

  // --- Comboboxes --------------------------------------------------------------------------

  function comboOf(el) { return el && el.closest ? el.closest("[data-combo]") : null; }
  function inputOf(combo) { return combo.querySelector("[role=combobox]"); }
  function listOf(combo) { return combo.querySelector("[role=listbox]"); }
  function valueOf(combo) { return document.getElementById(combo.dataset.valueInput); }
  function optionsOf(combo) { return Array.prototype.slice.call(listOf(combo).querySelectorAll("[role=option]")); }
  function activeOf(combo) { return listOf(combo).querySelector("[role=option].active"); }
  function isOpen(combo) { return inputOf(combo).getAttribute("aria-expanded") === "true"; }

  // The text the listed suggestions answer (the server echoes it): stale lists are never taken.
  function answered(combo) {
    var first = listOf(combo).querySelector("[data-q]");
    return first ? first.getAttribute("data-q").trim() : null;
  }
  function isFresh(combo) { return answered(combo) === inputOf(combo).value.trim(); }

  function openList(combo) {
    if (!listOf(combo).children.length) return closeList(combo);
    listOf(combo).classList.add("show");
    inputOf(combo).setAttribute("aria-expanded", "true");
  }

  function closeList(combo) {
    listOf(combo).classList.remove("show");
    inputOf(combo).setAttribute("aria-expanded", "false");
    inputOf(combo).removeAttribute("aria-activedescendant");
  }

  function activate(combo, option) {
    optionsOf(combo).forEach(function (o) {
      o.classList.toggle("active", o === option);
      o.setAttribute("aria-selected", o === option ? "true" : "false");
    });
    if (option) {
      inputOf(combo).setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else {
      inputOf(combo).removeAttribute("aria-activedescendant");
    }
  }

  function search(combo) {
    htmx.trigger(inputOf(combo), "otc:search");
  }

  function pick(combo, option, moveFocus) {
    var input = inputOf(combo);
    valueOf(combo).value = option.dataset.value;
    input.value = option.dataset.label;
    combo.dataset.picked = option.dataset.label;
    delete combo.dataset.enterPending;
    input.classList.remove("is-invalid");
    closeList(combo);
    if (combo.dataset.combo === "customer") {
      var card = document.getElementById("customer-card");
      var template = option.querySelector("template");
      card.replaceChildren(template ? template.content.cloneNode(true) : "");
      if (moveFocus) focusField(document.getElementById("id_customer_reference"));
    } else {
      var row = combo.closest("tr");
      row.querySelector("td[data-unit]").textContent = option.dataset.productUnit || "";
      var price = row.querySelector("input[data-price]");
      if (price) price.placeholder = option.dataset.listPrice;
      if (moveFocus) focusField(row.querySelector("[data-field=quantity]"));
      ensureSpareLine();
    }
    recalc();
  }

  function unpick(combo) {
    if (!valueOf(combo).value) return;
    valueOf(combo).value = "";
    delete combo.dataset.picked;
    if (combo.dataset.combo === "customer") {
      document.getElementById("customer-card").replaceChildren();
    } else {
      var row = combo.closest("tr");
      row.querySelector("td[data-unit]").textContent = "";
      var listPrice = row.querySelector("input[data-price]");
      if (listPrice) listPrice.placeholder = "List price";
    }
    recalc();
  }

  form.addEventListener("input", function (event) {
    var combo = comboOf(event.target);
    if (combo && event.target === inputOf(combo)) {
      if (event.target.value !== combo.dataset.picked) unpick(combo);
      if (!event.target.value.trim()) {
        listOf(combo).replaceChildren();
        closeList(combo);
      }
      return;
    }
    if (event.target.hasAttribute("data-recalc")) recalc();
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target.getAttribute("role") === "listbox") {
      var combo = comboOf(target);
      if (!combo) return;
      var input = inputOf(combo);
      if (document.activeElement !== input || !isFresh(combo)) return closeList(combo);
      var options = optionsOf(combo);
      if (combo.dataset.enterPending) {
        delete combo.dataset.enterPending;
        if (options.length === 1 || (options.length && options[0].dataset.q === input.value.trim())) {
          return pick(combo, options[0], true);
        }
      }
      openList(combo);
      activate(combo, options[0] || null);
    } else if (target.id === "entry-totals") {
      var nets = target.querySelector("template[data-line-nets]");
      if (!nets) return;
      nets.content.querySelectorAll("[data-net-for]").forEach(function (span) {
        var row = document.getElementById("line-" + span.dataset.netFor);
        if (row) row.querySelector("td[data-net]").textContent = span.textContent;
      });
    }
  });

  form.addEventListener("focusout", function (event) {
    var combo = comboOf(event.target);
    if (combo && !combo.contains(event.relatedTarget)) closeList(combo);
  });

  // A click on a suggestion must not take the focus from the input first.
  form.addEventListener("mousedown", function (event) {
    if (event.target.closest("[role=listbox]")) event.preventDefault();
  });
  form.addEventListener("click", function (event) {
    var option = event.target.closest("[role=option]");
    if (option) return pick(comboOf(option), option, true);
    if (event.target.closest("[data-remove-line]")) return removeLine(event.target.closest("tr"));
    if (event.target.closest("#entry-add-line")) return goToNewLine();
  });

  // --- Focus and lines ---------------------------------------------------------------------

  function focusField(el) {
    if (!el) return;
    el.focus();
    if (el.select && el.type === "text") el.select();
  }

  function fieldsOf(row) {
    return Array.prototype.slice.call(row.querySelectorAll("input[data-field]"));
  }

  function focusables() {
    return Array.prototype.slice.call(
      form.querySelectorAll("input:not([type=hidden]), select, textarea, button")
    ).filter(function (el) {
      return !el.disabled && el.tabIndex >= 0 && el.offsetParent !== null && !el.closest("[data-remove-line]");
    });
  }

  function advance(from) {
    var all = focusables();
    var next = all[all.indexOf(from) + 1];
    if (next) focusField(next);
  }

  function isBlank(row) {
    return fieldsOf(row).every(function (el) { return !el.value.trim(); });
  }

  function rows() { return Array.prototype.slice.call(tbody.querySelectorAll("tr.otc-line")); }

  function renumber() {
    rows().forEach(function (row, i) {
      var n = String(i + 1);
      row.querySelector("[data-line-no]").textContent = n;
      row.querySelectorAll("[data-line-label]").forEach(function (label) {
        label.textContent = label.dataset.lineLabel + ", line " + n;
      });
      row.querySelector("[data-remove-line]").setAttribute("aria-label", "Remove line " + n);
    });
  }

  // A blank line from the server, appended; resolves to its row. One request at a time.
  function addLine() {
    if (adding) return adding;
    var index = parseInt(tbody.dataset.nextIndex, 10) || 0;
    tbody.dataset.nextIndex = String(index + 1);
    adding = htmx
      .ajax("GET", form.dataset.lineUrl + "?index=" + index, { target: tbody, swap: "beforeend" })
      .then(function () {
        adding = null;
        var row = document.getElementById("line-" + index);
        // htmx wires up swapped content only when it settles; the clerk may already be typing.
        if (row) htmx.process(row);
        renumber();
        return row;
      }, function () {
        adding = null;
      });
    return adding;
  }

  // Keep one blank line at the end, fetched while the clerk is still on the line above, so that
  // Enter in the last field lands in it at once.
  function ensureSpareLine() {
    var all = rows();
    if (!all.length || !isBlank(all[all.length - 1])) addLine();
  }

  function focusProduct(row) {
    if (row) focusField(row.querySelector("[data-field=product]"));
  }

  function goToNewLine() {
    var all = rows();
    var last = all[all.length - 1];
    if (last && isBlank(last)) return focusProduct(last);
    // Until the new line is there, keys typed must not land in the line above.
    document.getElementById("entry-add-line").focus();
    var pending = addLine();
    if (pending) pending.then(focusProduct);
  }

  function nextLine(row) {
    var next = row.nextElementSibling;
    if (next) return focusProduct(next);
    goToNewLine();
  }

  function removeLine(row) {
    var target = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    renumber();
    if (!rows().length) {
      var pending = addLine();
      if (pending) pending.then(focusProduct);
    } else {
      focusProduct(target);
      ensureSpareLine();
    }
    recalc();
  }

  // --- Keys --------------------------------------------------------------------------------

  function saveAndConfirm() {
    var button = document.getElementById("save-confirm");
    if (!submitting) form.requestSubmit(button);
  }

  form.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      return saveAndConfirm();
    }
    var combo = comboOf(target);
    if (combo && target === inputOf(combo)) {
      var options = optionsOf(combo);
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (!options.length || !isFresh(combo)) {
          if (target.value.trim()) search(combo);
          return;
        }
        if (!isOpen(combo)) {
          openList(combo);
          return activate(combo, activeOf(combo) || options[0]);
        }
        var i = options.indexOf(activeOf(combo));
        i = event.key === "ArrowDown" ? Math.min(i + 1, options.length - 1) : Math.max(i - 1, 0);
        return activate(combo, options[i]);
      }
      if (event.key === "Escape") {
        if (isOpen(combo)) {
          event.preventDefault();
          closeList(combo);
        }
        return;
      }
      if (event.key === "Enter") {
        event.preventDefault();
        if (isOpen(combo) && isFresh(combo) && activeOf(combo)) return pick(combo, activeOf(combo), true);
        if (valueOf(combo).value && target.value === combo.dataset.picked) {
          var row = target.closest("tr.otc-line");
          return row ? focusField(row.querySelector("[data-field=quantity]")) : advance(target);
        }
        if (target.value.trim()) {
          // Typed faster than the suggestions came: take the best match when it arrives.
          combo.dataset.enterPending = "1";
          search(combo);
        }
        return;
      }
      if (event.key === "Tab" && !event.shiftKey && isOpen(combo) && isFresh(combo) && activeOf(combo)) {
        pick(combo, activeOf(combo), false);
      }
      return;
    }
    if (event.key === "Enter" && target.tagName === "INPUT" && target.type !== "submit" && target.type !== "button") {
      event.preventDefault();
      var line = target.closest("tr.otc-line");
      if (!line) return advance(target);
      var fields = fieldsOf(line);
      var at = fields.indexOf(target);
      if (at < fields.length - 1) return focusField(fields[at + 1]);
      return nextLine(line);
    }
  });

  form.addEventListener("submit", function (event) {
    if (submitting) return event.preventDefault();
    submitting = true;
    form.classList.add("is-saving");
  });

  // --- Start -------------------------------------------------------------------------------

  renumber();
  var invalid = form.querySelector(".is-invalid");
  var overrideReason = document.getElementById("id_override_reason");
  if (overrideReason) {
    focusField(overrideReason);
  } else if (invalid) {
    focusField(invalid);
  } else if (document.getElementById("id_customer").value) {
    focusField(document.getElementById("id_customer_reference"));
  }
  if (rows().some(function (row) { return !isBlank(row); })) ensureSpareLine();
})();
