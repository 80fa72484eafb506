package upnp

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/huin/goupnp/soap"
)

// TestParseSOAPFaultTestdata: every captured fault parses to the code its
// file is named after.
func TestParseSOAPFaultTestdata(t *testing.T) {
	files, _ := filepath.Glob("testdata/soap-*.xml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, file := range files {
		want, _ := strconv.Atoi(strings.Split(filepath.Base(file), "-")[1])
		se, err := parseSOAPFault(testdata(t, filepath.Base(file)))
		if err != nil || se.Code != want || se.Description == "" {
			t.Errorf("%s: %+v, %v; want code %d with a description", file, se, err, want)
		}
	}
}

func TestParseSOAPFaultRejects(t *testing.T) {
	for _, in := range []string{"", "<x/>", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:AddPortMappingResponse/></s:Body></s:Envelope>`,
		`<s:Envelope xmlns:s="e"><s:Body><s:Fault><faultstring>x</faultstring><detail><UPnPError><errorCode>abc</errorCode></UPnPError></detail></s:Fault></s:Body></s:Envelope>`} {
		if se, err := parseSOAPFault([]byte(in)); err == nil {
			t.Errorf("parseSOAPFault(%q) = %+v; want an error", in, se)
		}
	}
}

func TestSOAPErrorUnwrapsGoupnpFault(t *testing.T) {
	fault := &soap.SOAPFaultError{FaultString: "UPnPError"}
	fault.Detail.UPnPError.Errorcode = 718
	err := asSOAPError("AddPortMapping", errors.Join(errors.New("ctx"), fault))
	var se *SOAPError
	var back *soap.SOAPFaultError
	if !errors.As(err, &se) || se.Code != 718 || !errors.As(err, &back) || back != fault {
		t.Fatalf("asSOAPError = %#v", err)
	}
	if got := se.Error(); got != "UPnP error 718 ConflictInMappingEntry (AddPortMapping)" {
		t.Errorf("Error() = %q", got)
	}
	if asSOAPError("x", nil) != nil {
		t.Error("asSOAPError(nil) != nil")
	}
}

func FuzzParseSOAPFault(f *testing.F) {
	files, _ := filepath.Glob("testdata/soap-*.xml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		se, err := parseSOAPFault(b)
		if err == nil && se == nil {
			t.Fatal("nil error and nil *SOAPError")
		}
		if err == nil {
			_ = se.Error()
		}
		if d, ok := parseUPnPErrorDetail(b); ok && d == nil {
			t.Fatal("ok with nil detail")
		}
	})
}
