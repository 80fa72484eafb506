package main

import (
	"bytes"
	"os"
	"testing"
)

// TestSchemaFileCurrent keeps configs/portfwd.schema.json (what editors
// and the Debian package use) equal to what portfwd schema prints. After
// changing the schema: go run ./cmd/portfwd schema > configs/portfwd.schema.json
func TestSchemaFileCurrent(t *testing.T) {
	f := testFactory()
	execute(t, newCmdSchema(f))
	printed := f.IO.Out.(*bytes.Buffer).Bytes()
	committed, err := os.ReadFile("../../configs/portfwd.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(printed) == 0 || !bytes.Equal(printed, committed) {
		t.Errorf("configs/portfwd.schema.json differs from portfwd schema's output (%d bytes, committed %d); run go run ./cmd/portfwd schema > configs/portfwd.schema.json", len(printed), len(committed))
	}
}
