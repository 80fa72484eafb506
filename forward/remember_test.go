package forward_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

func detectionFiles(t *testing.T, key string) *forward.DetectionFiles {
	return &forward.DetectionFiles{Dir: filepath.Join(t.TempDir(), "portfwd"), Key: func() string { return key }}
}

func TestDetectionFilesKeepOneChoicePerKindOfRules(t *testing.T) {
	f := detectionFiles(t, "192.168.1.1-0011223344ff")
	at := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	f.Remember(forward.Choice{Backend: "pcp", Answered: []string{"pcp", "natpmp"}, At: at})
	f.Remember(forward.Choice{Backend: "upnp", Answered: []string{"upnp"}, OtherHost: true, At: at})
	c, ok := f.Recall(false)
	if !ok || c.Backend != "pcp" || !slices.Equal(c.Answered, []string{"pcp", "natpmp"}) || c.OtherHost || !c.At.Equal(at) {
		t.Errorf("Recall(this host) = %+v, %v", c, ok)
	}
	if c, ok := f.Recall(true); !ok || c.Backend != "upnp" || !c.OtherHost {
		t.Errorf("Recall(another host) = %+v, %v", c, ok)
	}
	names, _ := filepath.Glob(filepath.Join(f.Dir, "*"))
	if len(names) != 2 || filepath.Base(names[0]) != "auto-192.168.1.1-0011223344ff-other-host.json" {
		t.Errorf("files %v; want two, named after the gateway, and no temp file left", names)
	}
	if fi, err := os.Stat(names[0]); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("file mode %v, %v; want it the user's alone", fi.Mode(), err)
	}
	f.Forget(false)
	if _, ok := f.Recall(false); ok {
		t.Error("Recall after Forget found a choice")
	}
	if _, ok := f.Recall(true); !ok {
		t.Error("Forget(this host) forgot the choice for another host too")
	}
}

func TestDetectionFilesRefreshRecallsNothingButRemembers(t *testing.T) {
	f := detectionFiles(t, "gw")
	f.Remember(forward.Choice{Backend: "natpmp", At: time.Now()})
	f.Refresh = true
	if _, ok := f.Recall(false); ok {
		t.Error("--rediscover recalled the choice")
	}
	f.Remember(forward.Choice{Backend: "pcp", At: time.Now()})
	f.Refresh = false
	if c, _ := f.Recall(false); c.Backend != "pcp" {
		t.Errorf("after a --rediscover run: %+v; want what it chose", c)
	}
}

func TestDetectionFilesIgnoreWhatDoesNotFit(t *testing.T) {
	good := `{"format_version": 1, "gateway": "gw", "other_host": false, "backend": "pcp", "answered": ["pcp"], "detected_at": "2025-05-01T10:00:00Z"}`
	for _, tt := range []struct {
		name, content string
	}{
		{"not JSON", "{\"format_version\": 1, \"gatew"},
		{"another format", strings.Replace(good, `"format_version": 1`, `"format_version": 2`, 1)},
		{"another gateway's file", strings.Replace(good, `"gateway": "gw"`, `"gateway": "other"`, 1)},
		{"the other kind of rules", strings.Replace(good, `"other_host": false`, `"other_host": true`, 1)},
		{"no backend", strings.Replace(good, `"backend": "pcp"`, `"backend": ""`, 1)},
		{"too many answers", strings.Replace(good, `["pcp"]`, `[`+strings.Repeat(`"pcp",`, 16)+`"pcp"]`, 1)},
		{"larger than portfwd writes", good + strings.Repeat(" ", 5000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := detectionFiles(t, "gw")
			os.MkdirAll(f.Dir, 0o700)
			path := filepath.Join(f.Dir, "auto-gw.json")
			if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, ok := f.Recall(false); !ok {
				t.Fatal("the good file was not recalled; the test proves nothing")
			}
			os.WriteFile(path, []byte(tt.content), 0o600)
			if c, ok := f.Recall(false); ok {
				t.Errorf("recalled %+v", c)
			}
		})
	}
}

func TestDetectionFilesNeverFollowALink(t *testing.T) {
	f := detectionFiles(t, "gw")
	f.Remember(forward.Choice{Backend: "pcp", At: time.Now()})
	path := filepath.Join(f.Dir, "auto-gw.json")
	real := filepath.Join(t.TempDir(), "elsewhere.json")
	if err := os.Rename(path, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, path); err != nil {
		t.Fatal(err)
	}
	if c, ok := f.Recall(false); ok {
		t.Errorf("recalled %+v through a link", c)
	}
}

func TestDetectionFilesWithoutAKey(t *testing.T) {
	for _, key := range []string{"", "../../etc/x", strings.Repeat("k", 201)} {
		f := detectionFiles(t, key)
		f.Remember(forward.Choice{Backend: "pcp", At: time.Now()})
		if _, ok := f.Recall(false); ok {
			t.Errorf("key %q: recalled a choice", key)
		}
		if names, _ := filepath.Glob(filepath.Join(filepath.Dir(f.Dir), "*", "*")); len(names) != 0 {
			t.Errorf("key %q: wrote %v", key, names)
		}
	}
}
