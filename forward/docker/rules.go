package docker

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/portfwd/portfwd/forward"
)

// rules is what the container asks for as validated rules, parsed by the
// config loader from specs written in the file's keys, so a label takes
// exactly what the file takes (ports, ranges, protocols, services,
// probes, families) and is refused with the same words.
func rules(ctx context.Context, owner string, c Container) ([]forward.Rule, error) {
	list, err := specs(c)
	if err != nil {
		return nil, err
	}
	doc := map[string]any{"name": owner}
	items := make([]map[string]any, len(list))
	for i, s := range list {
		s.fields["name"] = ruleName(c, i)
		items[i] = s.fields
	}
	doc["rules"] = items
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", forward.Printable(c.Name), err)
	}
	cfg, _, err := forward.Load(ctx, "container "+c.Name, data, forward.LoadOptions{})
	if err != nil {
		return nil, loadError(c, list, err)
	}
	return cfg.Rules, nil
}

// loadError names the label behind the loader's first complaint.
func loadError(c Container, list []spec, err error) error {
	var ce *forward.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) == 0 {
		return fmt.Errorf("container %s: %w", forward.Printable(c.Name), err)
	}
	d := ce.Problems[0]
	return labelError(c, labelOf(d.Key, list), errors.New(d.Message))
}

// keyPattern is a loader's key path: rules[N].field.
var keyPattern = regexp.MustCompile(`^rules\[(\d+)\]\.([a-z_]+)`)

// labelOf is the label that set the key the loader complained of.
func labelOf(key string, list []spec) string {
	m := keyPattern.FindStringSubmatch(key)
	if m == nil {
		return LabelForward
	}
	switch m[2] {
	case "protocol", "external_port", "internal_port":
		if i, _ := strconv.Atoi(m[1]); i < len(list) {
			return list[i].from
		}
		return LabelForward
	case "internal_host":
		return LabelNetwork
	}
	return "portfwd." + m[2]
}

// maxRuleName is the length of a rule's name the config allows, less
// room for a "-N" suffix.
const maxRuleName = 36

// ruleName is the name of the container's i-th rule: portfwd.name, else
// the container's name made a rule name (lower case, [a-z0-9-]), with
// "-2", "-3" … for the second and later forwards of one container.
func ruleName(c Container, i int) string {
	name, ok := c.Labels[LabelName]
	if !ok {
		name = sanitize(c.Name)
	}
	if i > 0 {
		name += "-" + strconv.Itoa(i+1)
	}
	return name
}

// sanitize makes a container name a rule name: the characters a
// container name may hold and a rule name may not (upper case, "_", ".")
// become lower case and "-".
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > maxRuleName {
		s = strings.TrimRight(s[:maxRuleName], "-")
	}
	if s == "" {
		s = "container"
	}
	return s
}
