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
	g.client.sc = timedSOAP{s: g.client.sc, timeout: timeout}
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
