package upnp

import (
	"encoding/xml"
	"errors"
	"fmt"
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

// parseSOAPFault reads a whole SOAP response envelope and returns the UPnP
// error in its Fault, if it has one. Tests use it to check the captured
// fault bodies in testdata; it shares the detail reader with asSOAPError.
func parseSOAPFault(body []byte) (*SOAPError, error) {
	var env struct {
		Body struct {
			Fault *struct {
				FaultCode   string `xml:"faultcode"`
				FaultString string `xml:"faultstring"`
				Detail      struct {
					Raw []byte `xml:",innerxml"`
				} `xml:"detail"`
			} `xml:"Fault"`
		} `xml:"Body"`
	}
	if err := xml.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("reading SOAP envelope: %w", err)
	}
	if env.Body.Fault == nil {
		return nil, errors.New("SOAP envelope carries no fault")
	}
	se, ok := parseUPnPErrorDetail(env.Body.Fault.Detail.Raw)
	if !ok {
		return nil, fmt.Errorf("SOAP fault %q carries no UPnP errorCode", env.Body.Fault.FaultString)
	}
	return se, nil
}
