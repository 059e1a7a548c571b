// The bluegreen example's routing in nginx's JavaScript (njs), for the
// bluegreen-1k scenario: a viewer with `deployment=blue|green` goes to that
// arm; a fresh viewer gets a weighted draw (green's share in $green_weight,
// the stand-in for edge's KV value) and a sticky cookie. The arm is kept in
// $bg_chosen for the request, so the cache key, the upstream and the cookie
// agree.
function arm(r) {
    const chosen = r.variables.bg_chosen;
    if (chosen) return chosen;
    const cookie = r.variables.cookie_deployment;
    let pick;
    if (cookie === "blue" || cookie === "green") {
        pick = cookie;
    } else {
        const green = Math.min(100, Math.max(0, Number(r.variables.green_weight) || 0));
        pick = Math.random() * 100 < green ? "green" : "blue";
    }
    r.variables.bg_chosen = pick;
    return pick;
}

function setCookie(r) {
    const cookie = r.variables.cookie_deployment;
    if (cookie === "blue" || cookie === "green") return "";
    return `deployment=${arm(r)}; Path=/; Max-Age=86400`;
}

export default { arm, setCookie };
