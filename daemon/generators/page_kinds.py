"""Kinds of business the template generator knows, and the wording each one's page starts with.

Long because it is a table of copy: per kind the words that name it in a prompt, its headline and sections,
and items that fit it (a bakery's menu lists bread, a salon's prices list haircuts; only software gets plans
with SSO). The code that reads the table is a few lines at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Item = tuple[str, str, str]  # title, meta (price, time, role...), text

# Every section the page can hold, in the order a new page lays them out.
SECTION_ORDER = ("about", "features", "services", "menu", "schedule", "gallery", "stats", "team",
                 "testimonials", "pricing", "hours", "faq", "contact")

HEADINGS = {
    "about": "About us", "features": "Why choose us", "services": "Services", "menu": "Menu",
    "schedule": "Class schedule", "gallery": "Gallery", "stats": "By the numbers", "team": "Meet the team",
    "testimonials": "What people say", "pricing": "Prices", "hours": "Opening hours",
    "faq": "Frequently asked questions", "contact": "Get in touch",
}

GENERIC_HOURS: tuple[Item, ...] = (
    ("Monday to Friday", "9:00 - 18:00", ""), ("Saturday", "10:00 - 16:00", ""), ("Sunday", "Closed", ""))


@dataclass(frozen=True)
class Kind:
    """One kind of business: how prompts name it and what its page says before anyone refines it."""

    key: str
    words: tuple[str, ...]
    sections: tuple[str, ...]
    accent: str
    headline: str
    subheadline: str
    tagline: str
    cta: str
    items: dict[str, tuple[Item, ...]] = field(default_factory=dict)
    intros: dict[str, str] = field(default_factory=dict)
    headings: dict[str, str] = field(default_factory=dict)
    cta_to: str = "contact"  # the section the hero's button leads to ("See today's bakes": the menu)


KINDS: tuple[Kind, ...] = (
    Kind(
        "bakery", ("bakery", "bakeries", "bakehouse", "patisserie", "bread", "breads", "pastry", "pastries",
                   "baker", "cake shop", "cakes", "croissants", "sourdough"),
        ("about", "menu", "hours", "contact"), "amber",
        "Baked from scratch, right here in town",
        "Sourdough, pastries and celebration cakes made by hand with local flour.",
        "Neighbourhood bakery", "See today's bakes",
        {
            "menu": (("Country sourdough", "$7", "Slow-fermented for 36 hours, crackly crust."),
                     ("Butter croissant", "$3.50", "Laminated by hand every morning."),
                     ("Cinnamon bun", "$4", "Cardamom dough, brown sugar and cinnamon."),
                     ("Seeded rye", "$6.50", "Dense, nutty and keeps for days."),
                     ("Lemon tart", "$5", "Silky curd in a crisp butter crust."),
                     ("Celebration cake", "from $38", "Order two days ahead; we write the message.")),
            "pricing": (("Loaf of the day", "$7", "Whatever came out of the oven first."),
                        ("Pastry box of six", "$18", "A mix of our morning pastries."),
                        ("Custom cake", "from $38", "Sized for 8 to 40 guests.")),
            "services": (("Custom cakes", "from $38", "Birthdays, weddings and everything between."),
                         ("Catering trays", "from $45", "Pastries and sandwiches for the office."),
                         ("Wholesale bread", "On request", "Daily delivery to cafes and shops.")),
            "hours": (("Tuesday to Friday", "7:00 - 18:00", ""), ("Saturday and Sunday", "7:00 - 14:00", ""),
                      ("Monday", "Closed", "")),
            "faq": (("Do you have gluten-free bread?", "", "Yes, a gluten-free loaf on Fridays and Saturdays."),
                    ("Can I order a cake?", "", "Ask in store or use the form, two days ahead."),
                    ("When is the bread out?", "", "The first loaves are on the shelf by 7:00.")),
        },
        {"about": "We bake in small batches through the night, so everything on the shelf is fresh that day.",
         "menu": "Baked fresh every morning; ask what just came out of the oven."},
        cta_to="menu",
    ),
    Kind(
        "cafe", ("cafe", "café", "coffee", "coffee shop", "espresso", "tea room", "tearoom", "roastery"),
        ("about", "menu", "hours", "contact"), "orange",
        "Good coffee, slow mornings",
        "Single-origin espresso, fresh pastries and a quiet table by the window.",
        "Coffee house", "See the menu",
        {
            "menu": (("Flat white", "$4", "Double ristretto, silky milk."),
                     ("Pour-over", "$5", "This week's single origin, brewed to order."),
                     ("Chai latte", "$4.50", "House-made spice blend."),
                     ("Avocado toast", "$11", "Sourdough, lime and chilli flakes."),
                     ("Banana bread", "$4", "Toasted, with salted butter.")),
            "pricing": (("Beans, 250 g", "$14", "This month's roast, ground for you if you like."),
                        ("Coffee card", "$36", "Ten drinks for the price of nine."),
                        ("Brunch for two", "$32", "Two mains, two coffees, one pastry to share.")),
            "hours": (("Monday to Friday", "7:00 - 17:00", ""), ("Saturday and Sunday", "8:00 - 16:00", "")),
        },
        cta_to="menu",
    ),
    Kind(
        "restaurant", ("restaurant", "bistro", "diner", "pizzeria", "pizza", "sushi", "trattoria", "taqueria",
                       "brasserie", "eatery", "food truck", "tapas", "steakhouse", "ramen"),
        ("about", "menu", "testimonials", "hours", "contact"), "rose",
        "Seasonal food, made to share",
        "A neighbourhood kitchen cooking with what the market brings in each week.",
        "Kitchen and bar", "Book a table",
        {
            "menu": (("Burrata", "$14", "Heirloom tomatoes, basil oil and toasted bread."),
                     ("Wood-fired flatbread", "$16", "Charred peppers, ricotta and honey."),
                     ("Slow-roasted lamb", "$29", "Salsa verde and crispy potatoes."),
                     ("Catch of the day", "$27", "Ask your server what came in this morning."),
                     ("Chocolate torte", "$10", "With crème fraîche.")),
            "pricing": (("Set lunch", "$22", "Two courses and a glass of house wine."),
                        ("Tasting menu", "$65", "Six courses, changing with the season."),
                        ("Private dining", "from $45 a guest", "For groups of 10 to 24.")),
            "hours": (("Tuesday to Thursday", "17:00 - 22:00", ""), ("Friday and Saturday", "17:00 - 23:00", ""),
                      ("Sunday", "12:00 - 21:00", ""), ("Monday", "Closed", "")),
        },
        {"contact": "Book a table or ask about private dining."},
    ),
    Kind(
        "salon", ("salon", "hair", "hairdresser", "barber", "barbershop", "spa", "nail", "nails", "beauty",
                  "manicure", "massage", "stylist"),
        ("services", "pricing", "testimonials", "contact"), "rose",
        "Leave feeling like yourself, only better",
        "Cuts, colour and care from stylists who listen first.",
        "Hair and beauty", "Book an appointment",
        {
            "services": (("Cut and style", "45 min", "A consultation, wash, cut and finish."),
                         ("Colour", "90 min", "Balayage, highlights or a full colour."),
                         ("Treatments", "30 min", "Deep conditioning and scalp care.")),
            "pricing": (("Cut and style", "$45", "Includes wash and blow-dry."),
                        ("Colour", "from $90", "Price depends on length and technique."),
                        ("Full treatment", "$150", "Cut, colour and conditioning in one visit.")),
            "faq": (("Do I need to book?", "", "Booking is best; we take walk-ins when a chair is free."),
                    ("What if I need to cancel?", "", "Let us know 24 hours ahead and there is no fee."),
                    ("Do you do consultations?", "", "Yes, a free 15-minute consultation before any colour.")),
        },
    ),
    Kind(
        "fitness", ("gym", "fitness", "yoga", "pilates", "crossfit", "personal trainer", "trainer", "boxing",
                    "martial arts", "dance studio", "climbing"),
        ("about", "schedule", "pricing", "testimonials", "contact"), "teal",
        "Stronger every week",
        "Small classes, coaches who know your name and a schedule that fits your day.",
        "Move well", "Book a free class",
        {
            "schedule": (("Monday", "7:00", "Morning flow"), ("Tuesday", "18:30", "Strength and mobility"),
                         ("Wednesday", "12:15", "Lunchtime express"), ("Thursday", "18:30", "Power class"),
                         ("Saturday", "9:00", "Weekend community class")),
            "pricing": (("Drop-in", "$18", "One class, no commitment."),
                        ("Ten-class pass", "$150", "Use it within three months."),
                        ("Unlimited", "$95/mo", "Every class, every week.")),
            "services": (("Group classes", "", "Coached sessions for every level."),
                         ("Personal training", "from $60", "One-to-one plans built around you."),
                         ("Workshops", "", "Monthly deep dives into technique.")),
        },
    ),
    Kind(
        "photography", ("photographer", "photography", "photo studio", "photos", "videographer", "wedding "
                        "photographer"),
        ("about", "gallery", "services", "testimonials", "contact"), "violet",
        "Moments worth keeping",
        "Natural, unposed photographs of the days that matter to you.",
        "Photography", "Check my dates",
        {
            "gallery": (("Golden hour", "Weddings", "An evening portrait by the lake."),
                        ("First dance", "Weddings", "The moment the room went quiet."),
                        ("Family morning", "Portraits", "Pancakes, pyjamas and a lot of laughing."),
                        ("City lights", "Editorial", "A night walk through the old town.")),
            "services": (("Weddings", "from $1,800", "Full-day coverage and an online gallery."),
                         ("Portraits", "from $250", "An hour on location, twenty edited images."),
                         ("Events", "from $600", "Conferences, launches and parties.")),
            "pricing": (("Portrait session", "$250", "One hour, twenty edited images."),
                        ("Half-day", "$900", "Up to four hours of coverage."),
                        ("Full wedding day", "$1,800", "Getting ready to the first dance.")),
        },
    ),
    Kind(
        "clinic", ("dentist", "dental", "clinic", "doctor", "physio", "physiotherapy", "therapist", "therapy",
                   "vet", "veterinary", "optician", "chiropractor", "medical"),
        ("about", "services", "team", "hours", "contact"), "blue",
        "Care that puts you at ease",
        "Friendly, unhurried appointments with an experienced team.",
        "Your local practice", "Book an appointment",
        {
            "services": (("Check-ups", "30 min", "A thorough look and honest advice."),
                         ("Treatment", "by appointment", "Modern techniques, explained in plain words."),
                         ("Emergencies", "same day", "Call us in the morning and we will fit you in.")),
            "pricing": (("Check-up", "$60", "Examination and a written plan."),
                        ("Follow-up visit", "$45", "Within six weeks of your check-up."),
                        ("Consultation", "$40", "Fifteen minutes to talk through a concern.")),
            "team": (("Dr. Amira Hassan", "Lead clinician", "Fifteen years of practice."),
                     ("Dr. Tom Becker", "Clinician", "Calm hands and clear explanations."),
                     ("Lucy Park", "Practice manager", "Keeps the appointments running on time.")),
        },
    ),
    Kind(
        "software", ("app", "saas", "software", "startup", "platform", "api", "dashboard", "tool", "sdk",
                     "crm", "analytics", "product"),
        ("features", "pricing", "testimonials", "faq", "contact"), "indigo",
        "Get more done with less busywork",
        "One place for your team's work, with the boring parts automated.",
        "Now in public beta", "Start free",
        {
            "features": (("Fast", "01", "Pages load instantly, on any device."),
                         ("Automated", "02", "Repetitive steps run on their own."),
                         ("Secure", "03", "Encrypted at rest and in transit."),
                         ("Integrations", "04", "Connects to the tools you already use.")),
            "pricing": (("Starter", "$9/mo", "Everything to try it on your own."),
                        ("Pro", "$29/mo", "More capacity, priority support and insights."),
                        ("Business", "$79/mo", "For teams: shared access, SSO and an SLA.")),
            "faq": (("Is there a free trial?", "", "Yes, 14 days with every feature, no card needed."),
                    ("Can I cancel anytime?", "", "Yes, there are no long-term commitments."),
                    ("Where is my data stored?", "", "In the EU, encrypted and backed up daily.")),
        },
    ),
    Kind(
        "agency", ("agency", "consultancy", "consulting", "consultant", "freelancer", "freelance", "designer",
                   "developer", "architect", "lawyer", "law firm", "accountant", "marketing"),
        ("about", "services", "gallery", "testimonials", "contact"), "indigo",
        "Work that moves the needle",
        "A small, senior team that takes on a handful of projects at a time.",
        "Independent studio", "Start a project",
        {
            "gallery": (("Northwind rebrand", "Branding", "A new identity for a 40-year-old company."),
                        ("Harbour app", "Product", "From sketch to launch in twelve weeks."),
                        ("Fieldnotes", "Editorial", "A quarterly magazine, print and web.")),
            "pricing": (("Strategy sprint", "from $4,000", "Two weeks to a plan you can act on."),
                        ("Project", "from $15,000", "Design and build, start to launch."),
                        ("Retainer", "from $3,000 a month", "A senior team on call.")),
        },
        headings={"gallery": "Selected work"},
    ),
    Kind(
        "shop", ("shop", "store", "boutique", "florist", "flowers", "bookshop", "bookstore", "gift shop",
                 "market", "deli", "grocery"),
        ("about", "features", "hours", "contact"), "emerald",
        "Thoughtfully chosen, fairly priced",
        "An independent shop with things we would buy ourselves.",
        "Independent shop", "Visit us",
        {
            "pricing": (("Gift card", "from $20", "Spend it in store, any time in two years."),
                        ("Local delivery", "$5", "Same day within five miles, free over $60."),
                        ("Members", "10% off", "Join at the till; it costs nothing.")),
            "features": (("Hand-picked", "", "Every item chosen by us, nothing by an algorithm."),
                         ("Local makers", "", "Half of our shelves come from within 50 miles."),
                         ("Gift wrapping", "", "Free, and done with care.")),
        },
        headings={"features": "Why shop with us"},
        cta_to="hours",
    ),
    Kind(
        "event", ("wedding", "conference", "festival", "event", "meetup", "party", "summit", "workshop"),
        ("about", "schedule", "faq", "contact"), "violet",
        "Save the date",
        "Everything you need to know, in one place.",
        "You're invited", "RSVP",
        {
            "schedule": (("Arrival", "14:00", "Welcome drinks in the garden."),
                         ("Main programme", "15:00", "Talks, toasts and the main event."),
                         ("Dinner", "18:30", "Seated dinner in the hall."),
                         ("Evening", "21:00", "Music until late.")),
            "pricing": (("Early bird", "$49", "Until a month before the day."),
                        ("Standard", "$79", "Everything, all day."),
                        ("Group of five", "$320", "Bring your team.")),
        },
        headings={"schedule": "Programme"},
    ),
)

GENERIC = Kind(
    "generic", (), ("about", "features", "testimonials", "contact"), "blue",
    "Welcome to {name}",
    "Friendly, reliable and here when you need us.",
    "Made with care", "Get in touch",
)

# Fallback items for a section a kind does not word itself: plain enough to fit any business.
GENERIC_ITEMS: dict[str, tuple[Item, ...]] = {
    "features": (("Friendly", "", "People who are glad to help, every time."),
                 ("Reliable", "", "We do what we say, when we say it."),
                 ("Local", "", "Part of the neighbourhood for years.")),
    "services": (("Consultation", "", "A first talk about what you need."),
                 ("Full service", "", "We take care of everything, start to finish."),
                 ("Follow-up", "", "We check in to make sure all is well.")),
    "menu": (("House special", "$14", "Our signature, made fresh every day."),
             ("Seasonal plate", "$12", "What is good this week."),
             ("Something sweet", "$6", "Ask what came out of the oven.")),
    "schedule": (("Monday", "18:00", "Evening session"), ("Wednesday", "12:00", "Lunchtime session"),
                 ("Saturday", "10:00", "Weekend session")),
    "gallery": (("Morning light", "", "A quiet start to the day at {name}."),
                ("In the details", "", "Craft you can see up close."),
                ("Together", "", "The people who make {name} what it is.")),
    "stats": (("Happy customers", "2,000+", "and counting"), ("Average rating", "4.9", "out of 5"),
              ("Years running", "8", "and still growing")),
    "team": (("Jordan Blake", "Founder", "Started {name} to do things properly."),
             ("Priya Nair", "Manager", "Keeps everything running smoothly."),
             ("Marco Silva", "Customer care", "Here whenever you need help.")),
    "testimonials": (("Ana P.", "Regular", "Exactly what I hoped for, and friendly with it."),
                     ("Sam K.", "Neighbour", "I recommend {name} to everyone I know."),
                     ("Lee M.", "First-time visitor", "I'll be back, no question.")),
    "pricing": (("Basic", "$25", "The essentials, done well."),
                ("Standard", "$50", "Our most popular choice."),
                ("Premium", "$90", "Everything, with extra care.")),
    "hours": GENERIC_HOURS,
    "faq": (("Where are you?", "", "Our address is in the contact section below."),
            ("Do I need to book?", "", "Not usually; get in touch if you want to be sure."),
            ("How can I pay?", "", "Card, cash or bank transfer.")),
    "about": (),
    "contact": (),
}

GENERIC_INTROS = {
    "about": "{name} is a small, independent business that cares about getting the details right.",
    "features": "A few reasons people keep coming back.",
    "services": "What we can do for you.",
    "menu": "Made fresh, with good ingredients.",
    "schedule": "Find a time that suits you.",
    "gallery": "A look around {name}.",
    "stats": "A few numbers we are proud of.",
    "team": "The people behind {name}.",
    "testimonials": "Kind words from people we have worked with.",
    "pricing": "Clear prices, no surprises.",
    "hours": "Drop by any time we are open.",
    "faq": "Answers to what people ask us most.",
    "contact": "Questions for {name}? Send us a note and we will reply within a day.",
}


def kind_for(text: str) -> Kind:
    """The kind a prompt describes: the one whose word appears earliest wins (a "bakery app" is a bakery)."""
    lowered = " " + " ".join(text.lower().replace("-", " ").split()) + " "
    best: tuple[int, int, Kind] | None = None
    for rank, kind in enumerate(KINDS):
        for word in kind.words:
            at = _find_word(lowered, word)
            # Software words are weak: they lose to any named trade ("a salon booking app" is a salon).
            key = (at + (10_000 if kind.key == "software" else 0), rank)
            if at >= 0 and (best is None or key < best[:2]):
                best = (*key, kind)
    return best[2] if best else GENERIC


def by_key(key: str) -> Kind:
    """The kind named ``key`` (GENERIC when unknown, e.g. a model from a newer template)."""
    return next((k for k in KINDS if k.key == key), GENERIC)


def _find_word(lowered: str, word: str) -> int:
    """Position of ``word`` as a whole word (plural "s" allowed) in the padded, lowercased text, or -1."""
    m = re.search(rf"(?<![a-z]){re.escape(word)}s?(?![a-z])", lowered)
    return m.start() if m else -1
