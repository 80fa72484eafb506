package upnp

import (
	"context"
	"errors"
	"time"

	"github.com/huin/goupnp/soap"

	"github.com/portfwd/portfwd/forward"
)

// limit bounds each request g sends by timeout, soapTimeout when zero:
// every SOAP action, listing pages included, gets the whole timeout of its
// own, so a long apply on a slow router never runs out of time because the
// requests before took long. A request the gateway does not answer in time
// fails with a *forward.SlowError naming it. Discover limits every IGD it
// returns; the HTTP client under them has no timeout of its own, which
// would end a request first and in goupnp's words.
func (g *IGD) limit(timeout time.Duration) {
	if timeout <= 0 {
		timeout = soapTimeout
	}
	g.client = timedClient{c: g.client, timeout: timeout}
	if g.soap != nil {
		g.soap = timedSOAP{s: g.soap, timeout: timeout}
	}
}

// timed runs one SOAP request named action under its own timeout. A SOAP
// fault is an answer, even one that came back as the time ran out.
func timed(ctx context.Context, timeout time.Duration, action string, call func(ctx context.Context) error) error {
	var answer error
	err := forward.WithinRequestTimeout(ctx, timeout, action, func(ctx context.Context) error {
		answer = call(ctx)
		return answer
	})
	if fault := (*soap.SOAPFaultError)(nil); errors.As(answer, &fault) {
		return answer
	}
	return err
}

// timedClient is an igdClient whose every request has its own timeout.
type timedClient struct {
	c       igdClient
	timeout time.Duration
}

func (t timedClient) AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string,
	internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32) error {
	return timed(ctx, t.timeout, "AddPortMapping", func(ctx context.Context) error {
		return t.c.AddPortMappingCtx(ctx, remoteHost, externalPort, protocol, internalPort, internalClient, enabled, description, leaseSeconds)
	})
}

func (t timedClient) DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error {
	return timed(ctx, t.timeout, "DeletePortMapping", func(ctx context.Context) error {
		return t.c.DeletePortMappingCtx(ctx, remoteHost, externalPort, protocol)
	})
}

func (t timedClient) GetGenericPortMappingEntryCtx(ctx context.Context, index uint16) (remoteHost string, externalPort uint16, protocol string,
	internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32, err error) {
	err = timed(ctx, t.timeout, "GetGenericPortMappingEntry", func(ctx context.Context) error {
		var err error
		remoteHost, externalPort, protocol, internalPort, internalClient, enabled, description, leaseSeconds, err =
			t.c.GetGenericPortMappingEntryCtx(ctx, index)
		return err
	})
	return
}

func (t timedClient) GetSpecificPortMappingEntryCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) (
	internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32, err error) {
	err = timed(ctx, t.timeout, "GetSpecificPortMappingEntry", func(ctx context.Context) error {
		var err error
		internalPort, internalClient, enabled, description, leaseSeconds, err =
			t.c.GetSpecificPortMappingEntryCtx(ctx, remoteHost, externalPort, protocol)
		return err
	})
	return
}

func (t timedClient) GetExternalIPAddressCtx(ctx context.Context) (addr string, err error) {
	err = timed(ctx, t.timeout, "GetExternalIPAddress", func(ctx context.Context) error {
		var err error
		addr, err = t.c.GetExternalIPAddressCtx(ctx)
		return err
	})
	return
}

// timedSOAP is a soapPerformer whose every request has its own timeout.
type timedSOAP struct {
	s       soapPerformer
	timeout time.Duration
}

func (t timedSOAP) PerformActionCtx(ctx context.Context, actionNamespace, actionName string, inAction, outAction interface{}) error {
	return timed(ctx, t.timeout, actionName, func(ctx context.Context) error {
		return t.s.PerformActionCtx(ctx, actionNamespace, actionName, inAction, outAction)
	})
}
