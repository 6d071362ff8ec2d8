package roles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/fwpush/fwpush/templates"
)

// Digest identifies what the plan was compiled from: the inventory as
// loaded (every host, role, site and setting, with the defaults filled
// in, whatever file or source it came from, and not how it was written:
// comments, order and spacing do not count), the text of the template
// each role names (the built-in ones and the blocks they share
// included), and the compile's options. The same inventory and templates
// give the same digest; a change to any host, address, role, allow entry,
// setting or template gives another. A saved plan records it, and apply
// refuses a plan whose inventory has changed since.
func (p *Plan) Digest() string {
	h := sha256.New()
	part := func(name string, v []byte) { fmt.Fprintf(h, "%s %d\n%s\n", name, len(v), v) }
	part("digest", []byte("fwpush/inventory/v1"))
	inv := *p.Inventory
	inv.Path, inv.Warnings = "", nil // where it was read from and what validate said of it
	model, err := json.Marshal(inv)
	if err != nil {
		// Every field is plain data: this is a bug, and a digest that
		// matches nothing is what it must cost.
		model = []byte("unmarshalable: " + err.Error())
	}
	part("inventory", model)
	opts, _ := json.Marshal(p.Options)
	part("options", opts)
	var names []string
	for _, r := range p.Inventory.Roles {
		names = append(names, r.Template)
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		text, builtin := templates.Builtin(name)
		if pt, ok := p.templates[name]; ok && pt.src != "" {
			text = pt.src
		} else if !builtin {
			// A user template the compile did not read (no host of its
			// roles was compiled): its name stands for it.
			text = "not read"
		}
		part("template "+name, []byte(text))
	}
	part("base", []byte(templates.BaseSource()))
	sum := h.Sum(nil)
	return "sha256:" + hex.EncodeToString(sum)
}
