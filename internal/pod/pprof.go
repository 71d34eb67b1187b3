package pod

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
)

// checkPprofAddr accepts only a loopback host:port for --pprof: the
// profiles expose the process's memory and stacks, so they are never
// served beyond the host (an operator reaches them with a port forward).
func checkPprofAddr(s string) error {
	if s == "" {
		return nil
	}
	if err := hostPort(s); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(s)
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("host %q: want a loopback address (127.0.0.1, ::1 or localhost)", host)
	}
	return nil
}

// pprofMux serves the runtime's profiles under /debug/pprof/ (the paths
// go tool pprof expects).
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// pprofServer is the --pprof listener (opened by New, so a taken port
// fails the start) and its server (started by Run).
type pprofServer struct {
	lis net.Listener
	srv *http.Server
}

// close stops the server, or closes the listener it never served.
func (s *pprofServer) close() {
	switch {
	case s.srv != nil:
		_ = s.srv.Close()
	case s.lis != nil:
		_ = s.lis.Close()
	}
}

// servePprof starts the profiling server on p.prof.lis (a no-op without
// one: --pprof is off by default).
func (p *Pod) servePprof() {
	if p.prof.lis == nil {
		return
	}
	srv := &http.Server{
		Handler:           pprofMux(),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		// No write timeout: a CPU profile or trace streams for ?seconds=N.
	}
	p.prof.srv = srv
	lis := p.prof.lis
	p.log.Info("pod: serving profiles (--pprof)", "url", "http://"+lis.Addr().String()+"/debug/pprof/")
	p.goTracked(func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("pod: pprof server", "err", err)
		}
	})
}
