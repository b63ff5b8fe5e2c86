"""Product names and option values of the retail catalog, as customers name them.

The extractors read item descriptions ("the mechanical keyboard", "clicky switches") with
these words; they never pick an item or a variant: a plan selects them from the order and
the product at execution (JMESPath selections), and a description that matches no value
here is asked for, not guessed. The option values are those of the shipped τ²-bench retail
catalog (``tools/retail/data/db.json``; MIT, Sierra Research).
"""

from __future__ import annotations

PRODUCT_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "Action Camera": {
        "color": ("black", "silver"),
        "resolution": ("1080p", "4K", "5K"),
        "waterproof": ("no", "yes"),
    },
    "Air Purifier": {
        "features": ("night mode", "quiet operation", "smart sensors"),
        "filter type": ("HEPA", "carbon", "ionic"),
        "room size": ("large", "medium", "small"),
    },
    "Backpack": {
        "color": ("black", "green", "grey", "navy"),
        "compartment": ("camera", "hydration", "laptop"),
        "material": ("leather", "nylon", "polyester"),
        "size": ("large", "medium", "small"),
    },
    "Bicycle": {
        "color": ("black", "blue", "green", "red"),
        "frame size": ("large", "medium", "small"),
        "type": ("mountain", "road"),
    },
    "Bluetooth Speaker": {
        "battery life": ("10 hours", "20 hours"),
        "color": ("black", "blue", "green", "red"),
        "water resistance": ("no", "yes"),
    },
    "Bookshelf": {
        "color": ("black", "brown", "white"),
        "height": ("3 ft", "4 ft", "5 ft", "6 ft"),
        "material": ("glass", "metal", "wood"),
    },
    "Coffee Maker": {
        "capacity": ("1 cup", "2 cups", "4 cups", "8 cups"),
        "color": ("black", "stainless steel", "white"),
        "features": ("auto shutoff", "built-in grinder", "timer"),
        "type": ("drip", "espresso", "french press"),
    },
    "Cycling Helmet": {
        "color": ("black", "blue", "red", "white"),
        "size": ("L", "M", "S"),
        "ventilation": ("high", "low", "medium"),
    },
    "Desk Lamp": {
        "brightness": ("high", "low", "medium"),
        "color": ("black", "silver", "white"),
        "power source": ("AC adapter", "USB", "battery"),
    },
    "Digital Camera": {
        "resolution": ("20MP", "24MP", "30MP"),
        "storage": ("CF card", "SD card"),
        "zoom": ("10x", "3x", "5x"),
    },
    "Dumbbell Set": {
        "material": ("iron", "rubber", "urethane"),
        "set type": ("adjustable", "fixed"),
        "weight range": ("30-50 lbs", "5-25 lbs", "55-75 lbs"),
    },
    "E-Reader": {
        "connectivity": ("Wi-Fi", "Wi-Fi + Cellular"),
        "screen size": ("6-inch", "7-inch", "8-inch"),
        "storage": ("32GB", "8GB"),
    },
    "Electric Kettle": {
        "capacity": ("1.5L", "1L", "2L"),
        "color": ("black", "silver", "white"),
        "material": ("glass", "plastic", "stainless steel"),
    },
    "Electric Toothbrush": {
        "battery type": ("AA batteries", "rechargeable"),
        "color": ("black", "blue", "white"),
        "speed settings": ("high", "low"),
    },
    "Espresso Machine": {
        "capacity": ("1.5L", "1L", "2L"),
        "pressure": ("15 bar", "19 bar", "9 bar"),
        "type": ("automatic", "capsule", "manual"),
    },
    "Fleece Jacket": {
        "color": ("black", "navy", "red"),
        "size": ("L", "M", "S", "XL", "XS"),
        "zipper": ("full", "half"),
    },
    "Gaming Mouse": {
        "color": ("RGB", "black", "white"),
        "connectivity": ("wired", "wireless"),
        "sensor type": ("laser", "optical"),
    },
    "Garden Hose": {
        "color": ("black", "blue", "green"),
        "length": ("100ft", "25ft", "50ft"),
        "material": ("latex", "rubber", "vinyl"),
    },
    "Grill": {
        "features": ("none", "rotisserie", "side burner"),
        "size": ("large", "medium", "portable"),
        "type": ("charcoal", "electric", "gas"),
    },
    "Headphones": {
        "color": ("black", "blue", "red", "white"),
        "connectivity": ("wired", "wireless"),
        "type": ("in-ear", "on-ear", "over-ear"),
    },
    "Hiking Boots": {
        "material": ("leather", "synthetic"),
        "size": ("10", "11", "12", "7", "8", "9"),
        "waterproof": ("no", "yes"),
    },
    "Indoor Security Camera": {
        "connectivity": ("Ethernet", "Wi-Fi"),
        "field of view": ("110 degrees", "130 degrees", "160 degrees"),
        "resolution": ("1080p", "2K", "4K"),
    },
    "Jigsaw Puzzle": {
        "difficulty level": ("beginner", "expert", "intermediate"),
        "pieces": ("1000", "1500", "2000", "500"),
        "theme": ("animals", "art", "fantasy", "landscape"),
    },
    "LED Light Bulb": {
        "brightness": ("100W equivalent", "60W equivalent", "75W equivalent"),
        "color temperature": ("daylight", "warm white"),
        "connectivity": ("Bluetooth", "Wi-Fi", "none"),
    },
    "Laptop": {
        "color": ("black", "silver", "space grey"),
        "processor": ("i5", "i7", "i9"),
        "ram": ("16GB", "32GB", "8GB"),
        "screen size": ("13-inch", "15-inch", "17-inch"),
        "storage": ("1TB SSD", "256GB SSD", "512GB SSD"),
    },
    "Luggage Set": {
        "color": ("black", "blue", "red", "silver"),
        "material": ("hardshell", "softshell"),
        "piece count": ("2-piece", "3-piece", "4-piece"),
    },
    "Makeup Kit": {
        "brand": ("Brand A", "Brand B", "Brand C"),
        "kit size": ("basic", "professional"),
        "skin tone": ("dark", "light", "medium"),
    },
    "Mechanical Keyboard": {
        "backlight": ("RGB", "none", "white"),
        "size": ("60%", "80%", "full size"),
        "switch type": ("clicky", "linear", "tactile"),
    },
    "Notebook": {
        "cover type": ("hard cover", "soft cover"),
        "size": ("A4", "A5", "A6"),
    },
    "Office Chair": {
        "armrest": ("adjustable", "fixed", "none"),
        "backrest height": ("high-back", "standard"),
        "color": ("black", "blue", "gray", "red"),
        "material": ("fabric", "leather", "mesh"),
    },
    "Patio Umbrella": {
        "color": ("black", "blue", "green", "red"),
        "material": ("olefin", "polyester", "sunbrella"),
        "size": ("6 ft", "7 ft"),
        "tilt mechanism": ("auto tilt", "manual tilt"),
    },
    "Perfume": {
        "gender": ("men", "unisex", "women"),
        "scent family": ("fresh", "oriental", "woody"),
        "size": ("100ml", "30ml", "50ml"),
    },
    "Pet Bed": {
        "color": ("beige", "brown", "grey"),
        "material": ("fleece", "memory foam", "polyester"),
        "size": ("large", "medium", "small"),
    },
    "Portable Charger": {
        "capacity": ("10000mAh", "20000mAh", "5000mAh"),
        "color": ("black", "blue", "white"),
        "output": ("USB-A", "USB-C", "Wireless"),
    },
    "Running Shoes": {
        "color": ("black", "red", "white", "yellow"),
        "material": ("leather", "mesh", "synthetic"),
        "size": ("10", "8", "9"),
        "sole": ("EVA", "rubber"),
    },
    "Skateboard": {
        "deck material": ("bamboo", "maple", "plastic"),
        "design": ("custom", "graphic", "plain"),
        "length": ("28 inch", "31 inch", "34 inch"),
    },
    "Smart Thermostat": {
        "color": ("black", "stainless steel", "white"),
        "compatibility": ("Amazon Alexa", "Apple HomeKit", "Google Assistant"),
    },
    "Smart Watch": {
        "band material": ("leather", "metal", "silicone"),
        "color": ("black", "gold", "silver"),
        "display": ("AMOLED", "LCD"),
    },
    "Smartphone": {
        "RAM": ("4GB", "6GB", "8GB"),
        "color": ("black", "gold", "rose gold"),
        "screen size": ("5.8-inch", "6.1-inch", "6.5-inch"),
        "storage": ("128GB", "256GB", "64GB"),
    },
    "Sneakers": {
        "color": ("black", "gray", "red"),
        "material": ("canvas", "leather", "synthetic"),
        "size": ("10", "11", "6", "8"),
    },
    "Sunglasses": {
        "frame color": ("black", "brown", "silver"),
        "frame material": ("metal", "plastic"),
        "lens color": ("black", "blue", "brown", "green"),
        "lens type": ("non-polarized", "polarized"),
    },
    "T-Shirt": {
        "color": ("black", "blue", "purple", "red"),
        "material": ("cotton", "polyester"),
        "size": ("L", "M", "S", "XL", "XXL"),
        "style": ("crew neck", "v-neck"),
    },
    "Tablet": {
        "color": ("black", "gold", "silver"),
        "screen size": ("10-inch", "7-inch", "8-inch"),
        "storage": ("128GB", "32GB", "64GB"),
    },
    "Tea Kettle": {
        "capacity": ("1 liter", "1.5 liters", "2 liters"),
        "material": ("ceramic", "glass", "stainless steel"),
        "stovetop compatibility": ("electric", "gas", "induction"),
    },
    "Vacuum Cleaner": {
        "bagged/bagless": ("bagged", "bagless"),
        "features": ("HEPA filter", "cordless", "pet hair removal"),
        "type": ("canister", "robotic", "upright"),
    },
    "Wall Clock": {
        "color": ("black", "white", "wood"),
        "diameter": ("10 inches", "12 inches", "14 inches"),
        "type": ("analog", "digital"),
    },
    "Water Bottle": {
        "capacity": ("1000ml", "500ml", "750ml"),
        "color": ("black", "blue", "green", "red"),
        "material": ("glass", "plastic", "stainless steel"),
    },
    "Wireless Earbuds": {
        "battery life": ("4 hours", "6 hours", "8 hours"),
        "color": ("black", "blue", "white"),
        "water resistance": ("IPX4", "IPX7", "not resistant"),
    },
    "Wristwatch": {
        "dial color": ("black", "blue", "white"),
        "strap material": ("leather", "metal", "silicone"),
    },
    "Yoga Mat": {
        "color": ("blue", "green", "pink"),
        "material": ("PVC", "TPE", "natural rubber"),
        "thickness": ("4mm", "5mm", "6mm"),
    },
}
"""Each product name and, per option, its values."""

ALIASES: dict[str, tuple[str, ...]] = {
    "keyboard": ("Mechanical Keyboard",),
    "thermostat": ("Smart Thermostat",),
    "vacuum": ("Vacuum Cleaner",),
    "cleaner": ("Vacuum Cleaner",),
    "headphone": ("Headphones",),
    "t shirt": ("T-Shirt",),
    "tshirt": ("T-Shirt",),
    "shirt": ("T-Shirt",),
    "helmet": ("Cycling Helmet",),
    "boots": ("Hiking Boots",),
    "boot": ("Hiking Boots",),
    "luggage": ("Luggage Set",),
    "chair": ("Office Chair",),
    "book shelf": ("Bookshelf",),
    "jigsaw": ("Jigsaw Puzzle",),
    "puzzle": ("Jigsaw Puzzle",),
    "bottle": ("Water Bottle",),
    "lamp": ("Desk Lamp",),
    "jacket": ("Fleece Jacket",),
    "watch": ("Smart Watch", "Wristwatch"),
    "smartwatch": ("Smart Watch",),
    "camera": ("Action Camera", "Digital Camera", "Indoor Security Camera"),
    "speaker": ("Bluetooth Speaker",),
    "shoes": ("Running Shoes", "Sneakers"),
    "shoe": ("Running Shoes", "Sneakers"),
    "sneaker": ("Sneakers",),
    "kettle": ("Electric Kettle", "Tea Kettle"),
    "charger": ("Portable Charger",),
    "earbuds": ("Wireless Earbuds",),
    "mouse": ("Gaming Mouse",),
    "umbrella": ("Patio Umbrella",),
    "purifier": ("Air Purifier",),
    "coffee machine": ("Coffee Maker", "Espresso Machine"),
    "bike": ("Bicycle",),
    "hose": ("Garden Hose",),
    "light bulb": ("LED Light Bulb",),
    "bulb": ("LED Light Bulb",),
    "dumbbells": ("Dumbbell Set",),
    "clock": ("Wall Clock",),
    "phone": ("Smartphone",),
    "toothbrush": ("Electric Toothbrush",),
    "e reader": ("E-Reader",),
    "ereader": ("E-Reader",),
    "yoga mat": ("Yoga Mat",),
    "makeup": ("Makeup Kit",),
}
"""Words customers use for products; a word that names several is read as any of them."""

VALUE_ALIASES: dict[str, dict[str, tuple[str, str]]] = {
    "*": {
        "small": ("size", "S"),
        "medium": ("size", "M"),
        "large": ("size", "L"),
        "extra large": ("size", "XL"),
        "small sized": ("size", "S"),
        "medium sized": ("size", "M"),
        "large sized": ("size", "L"),
    },
    "Smart Thermostat": {"google home": ("compatibility", "Google Assistant")},
    "Mechanical Keyboard": {"no backlight": ("backlight", "none")},
    "Luggage Set": {
        "two piece": ("piece count", "2-piece"),
        "three piece": ("piece count", "3-piece"),
        "four piece": ("piece count", "4-piece"),
        "soft material": ("material", "softshell"),
        "hard material": ("material", "hardshell"),
    },
}
"""Phrases that name an option value in other words, per product ("*": any product whose
option has that value)."""
