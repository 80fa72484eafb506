package forward

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Memory keeps what auto detection chose for one gateway between runs, so
// that a later run opens that protocol alone instead of asking every one
// and waiting for the preferred (DetectBudget, DetectWindow): on a router
// with UPnP off, that wait is most of a run. Detect keeps one choice per
// kind of rules — otherHost: some rule forwards to another host — since
// the two kinds may choose differently (choose).
//
// Its rules:
//   - Recall returns the choice last remembered for that kind; ok is false
//     when there is none or it cannot be read. It is read from something
//     anyone with the user's rights may write, so Detect checks what it
//     returns against the openers and the rules before using it.
//   - Remember replaces the choice of c.OtherHost's kind, Forget removes
//     that of otherHost's. Both are best effort: a failure only costs the
//     next run a full detection, so it is not reported.
type Memory interface {
	Recall(otherHost bool) (c Choice, ok bool)
	Remember(c Choice)
	Forget(otherHost bool)
}

// Choice is one detection's outcome, as a Memory keeps it.
type Choice struct {
	Backend   string    // the chosen opener's Name
	Answered  []string  // the openers that answered, in order of preference
	OtherHost bool      // chosen for rules of which one forwards to another host
	At        time.Time // when every protocol was asked
}

// DetectionFiles is a Memory kept in the cache directory Dir, one small
// JSON file per gateway and kind of rules ("auto-<key>.json" and
// "auto-<key>-other-host.json"), written atomically (WriteFileAtomic) and
// read bounded (maxChoiceBytes) without following links.
type DetectionFiles struct {
	Dir string
	// Key names the gateway, like the UPnP discovery cache: its address
	// and, where the ARP table tells, its hardware address, so a laptop
	// that moves to another router at the same address does not use the
	// first one's choice. It is asked at every use, because the ARP table
	// learns the gateway during the run. "" (unknown) recalls and keeps
	// nothing.
	Key func() string
	// Refresh recalls nothing (--rediscover) but still remembers.
	Refresh bool
}

var _ Memory = (*DetectionFiles)(nil)

// choiceFormat is the version of the file layout; a file of any other
// version is ignored.
const choiceFormat = 1

// maxChoiceBytes bounds what Recall reads: a choice is about 200 bytes;
// anything much larger was not written by portfwd.
const maxChoiceBytes = 4096

// maxAnswered bounds the Answered list read back.
const maxAnswered = 16

// choiceFile is the file's layout.
type choiceFile struct {
	FormatVersion int       `json:"format_version"`
	Gateway       string    `json:"gateway"` // the key, checked on reading: a file copied from another gateway's name does not fit
	OtherHost     bool      `json:"other_host"`
	Backend       string    `json:"backend"`
	Answered      []string  `json:"answered"`
	DetectedAt    time.Time `json:"detected_at"`
}

// Recall implements Memory.
func (f *DetectionFiles) Recall(otherHost bool) (Choice, bool) {
	if f.Refresh {
		return Choice{}, false
	}
	key, path := f.path(otherHost)
	if path == "" {
		return Choice{}, false
	}
	raw, err := readBounded(path, maxChoiceBytes)
	if err != nil {
		return Choice{}, false
	}
	var c choiceFile
	if json.Unmarshal(raw, &c) != nil || c.FormatVersion != choiceFormat || c.Gateway != key ||
		c.OtherHost != otherHost || c.Backend == "" || len(c.Answered) > maxAnswered {
		return Choice{}, false
	}
	return Choice{Backend: c.Backend, Answered: c.Answered, OtherHost: c.OtherHost, At: c.DetectedAt}, true
}

// Remember implements Memory.
func (f *DetectionFiles) Remember(c Choice) {
	key, path := f.path(c.OtherHost)
	if path == "" {
		return
	}
	b, err := json.MarshalIndent(choiceFile{FormatVersion: choiceFormat, Gateway: key, OtherHost: c.OtherHost,
		Backend: c.Backend, Answered: c.Answered, DetectedAt: c.At.UTC()}, "", "  ")
	if err != nil || os.MkdirAll(f.Dir, 0o700) != nil {
		return
	}
	_ = WriteFileAtomic(path, ".auto-*.tmp", append(b, '\n'))
}

// Forget implements Memory.
func (f *DetectionFiles) Forget(otherHost bool) {
	if _, path := f.path(otherHost); path != "" {
		_ = os.Remove(path)
	}
}

// path is the gateway's key and the file of its choice for the kind, or
// "" when the key is unknown or cannot name a file.
func (f *DetectionFiles) path(otherHost bool) (key, path string) {
	if f.Dir == "" || f.Key == nil {
		return "", ""
	}
	key = f.Key()
	if key == "" || len(key) > 200 || strings.ContainsAny(key, "/\\\x00") {
		return "", ""
	}
	name := "auto-" + key
	if otherHost {
		name += "-other-host"
	}
	return key, filepath.Join(f.Dir, name+".json")
}

// readBounded reads the regular file at path (never through a link, never
// a pipe: OpenStateFile), failing when it holds more than limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := OpenStateFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = errors.New(path + " is larger than portfwd writes it")
	}
	return b, err
}
