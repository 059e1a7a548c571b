vcl 4.1;
# Varnish caching proxy in front of the origin, TTL 60 s (malloc storage and
# thread pools are set on varnishd's command line by bench/suite.sh).
# Rendered by bench/suite.sh: @ORIGIN_HOST@, @ORIGIN_PORT@.
backend default {
    .host = "@ORIGIN_HOST@";
    .port = "@ORIGIN_PORT@";
}
sub vcl_backend_response {
    set beresp.ttl = 60s;
    set beresp.grace = 10s;
}
