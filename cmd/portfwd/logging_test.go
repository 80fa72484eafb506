package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestLoggingDurationsReadable(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, format)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("pass", "took", 1235*time.Millisecond)
		if !strings.Contains(buf.String(), "1.235s") {
			t.Errorf("%s: duration not written as 1.235s: %s", format, buf.String())
		}
		if format == "json" && !json.Valid(buf.Bytes()) {
			t.Errorf("not a JSON line: %s", buf.String())
		}
	}
}

func TestLoggingFormatUnknown(t *testing.T) {
	t.Parallel()
	if _, err := newLogger(&bytes.Buffer{}, "logfmt"); err == nil || !strings.Contains(err.Error(), "use text or json") {
		t.Errorf("err = %v", err)
	}
}
