// The Go peer of bench/pair.sh: net/http/httputil's ReverseProxy in front of
// one upstream, as the seed builds it, with keep-alive pools sized for the
// benchmark's 64 connections.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:2002", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:2003", "where to send requests")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatalf("-upstream %q: %v", *upstream, err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	proxy.Transport = transport
	log.Fatal(http.ListenAndServe(*listen, proxy))
}
