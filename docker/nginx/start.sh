#!/bin/sh
# Starts nginx in the foreground with a resolver line for the container's
# own DNS server (podman's aardvark-dns, Docker's embedded one): the
# balancer resolves the replicas' shared name at request time, so a
# replica that restarts with a new address is found again.
set -eu
ns=$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf)
case "$ns" in *:*) ns="[$ns]" ;; esac
echo "resolver $ns valid=5s ipv6=off;" > /etc/nginx/resolver.conf
exec nginx -g 'daemon off;'
