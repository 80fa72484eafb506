package upnp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/huin/goupnp/soap"
)

// UPnP error codes a port-mapping client meets. The 4xx/5xx/6xx codes are
// from the UPnP Device Architecture 1.1, §3.2.2 (control: errors); the 7xx
// codes from WANIPConnection:1 §2.4.16 and WANIPConnection:2 §2.5.
const (
	codeInvalidAction       = 401
	codeInvalidArgs         = 402
	codeActionFailed        = 501
	codeNotAuthorized       = 606
	codeArrayIndexInvalid   = 713
	codeNoSuchEntry         = 714
	codeWildCardSrcIP       = 715
	codeWildCardExtPort     = 716
	codeConflict            = 718
	codeSamePortValues      = 724
	codeOnlyPermanentLeases = 725
	codeRemoteHostWildcard  = 726
	codeExtPortWildcard     = 727
	codeNoPortMapsAvailable = 728
	codeConflictOtherMech   = 729
	codeWildCardIntPort     = 732
	codePortMappingNotFound = 730
)

// codeNames are the error names the specs give each code, used when a router
// leaves errorDescription empty.
var codeNames = map[int]string{
	codeInvalidAction:       "Invalid Action",
	codeInvalidArgs:         "Invalid Args",
	codeActionFailed:        "Action Failed",
	codeNotAuthorized:       "Action not authorized",
	codeArrayIndexInvalid:   "SpecifiedArrayIndexInvalid",
	codeNoSuchEntry:         "NoSuchEntryInArray",
	codeWildCardSrcIP:       "WildCardNotPermittedInSrcIP",
	codeWildCardExtPort:     "WildCardNotPermittedInExtPort",
	codeConflict:            "ConflictInMappingEntry",
	codeSamePortValues:      "SamePortValuesRequired",
	codeOnlyPermanentLeases: "OnlyPermanentLeasesSupported",
	codeRemoteHostWildcard:  "RemoteHostOnlySupportsWildcard",
	codeExtPortWildcard:     "ExternalPortOnlySupportsWildcard",
	codeNoPortMapsAvailable: "NoPortMapsAvailable",
	codeConflictOtherMech:   "ConflictWithOtherMechanisms",
	codeWildCardIntPort:     "WildCardNotPermittedInIntPort",
	codePortMappingNotFound: "PortMappingNotFound",
}

// SOAPError is a UPnP error a gateway answered to a SOAP action: the
// errorCode and errorDescription of the fault's UPnPError detail (UPnP
// Device Architecture 1.1, §3.2.2). errors.As finds it in every error this
// package returns for a SOAP fault; it unwraps to goupnp's
// *soap.SOAPFaultError when it came from one.
type SOAPError struct {
	Code        int
	Description string
	Action      string // "AddPortMapping", …

	fault error
}

func (e *SOAPError) Error() string {
	desc := e.Description
	if desc == "" {
		desc = codeNames[e.Code]
	}
	s := fmt.Sprintf("UPnP error %d", e.Code)
	if desc != "" {
		s += " " + desc
	}
	if e.Action != "" {
		s += " (" + e.Action + ")"
	}
	return s
}

// Unwrap returns the underlying goupnp fault, if any.
func (e *SOAPError) Unwrap() error { return e.fault }

// soapCode is the UPnP error code in err, or 0 when err is not a SOAP fault.
func soapCode(err error) int {
	var se *SOAPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// asSOAPError turns a goupnp SOAP fault into a *SOAPError naming action;
// other errors pass through unchanged.
func asSOAPError(action string, err error) error {
	var fault *soap.SOAPFaultError
	if err == nil || !errors.As(err, &fault) {
		return err
	}
	se := &SOAPError{
		Code:        fault.Detail.UPnPError.Errorcode,
		Description: strings.TrimSpace(fault.Detail.UPnPError.ErrorDescription),
		Action:      action,
		fault:       fault,
	}
	if se.Code == 0 {
		// Quirk: some routers put the UPnPError in a namespace or case goupnp
		// does not match; read it from the raw detail ourselves.
		if d, ok := parseUPnPErrorDetail(fault.Detail.Raw); ok {
			se.Code, se.Description = d.Code, d.Description
		}
	}
	return se
}

// parseUPnPErrorDetail finds errorCode and errorDescription anywhere in a
// fault's detail, matching element names case-insensitively and ignoring
// namespaces, because routers disagree on both.
func parseUPnPErrorDetail(raw []byte) (*SOAPError, bool) {
	dec := xml.NewDecoder(bytes.NewReader(raw))
	dec.Strict = false
	se := &SOAPError{}
	found := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return se, found
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch strings.ToLower(start.Name.Local) {
		case "errorcode":
			if code, ok := readInt(dec, &start); ok {
				se.Code, found = code, true
			}
		case "errordescription":
			se.Description = readText(dec, &start)
		}
	}
}

// readInt reads the text of the current element as a decimal integer.
func readInt(dec *xml.Decoder, start *xml.StartElement) (int, bool) {
	n, err := strconv.Atoi(readText(dec, start))
	return n, err == nil
}

// readText reads the character data of the current element.
func readText(dec *xml.Decoder, start *xml.StartElement) string {
	var s string
	if err := dec.DecodeElement(&s, start); err != nil {
		return ""
	}
	return strings.TrimSpace(s)
}
